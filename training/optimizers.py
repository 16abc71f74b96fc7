"""Optimizers and learning-rate schedules from the run's config."""

from __future__ import annotations

from typing import Union

import keras

from training.config import TrainConfig


def make_learning_rate(config: TrainConfig) -> Union[float, keras.optimizers.schedules.LearningRateSchedule]:
    """A float or a Keras schedule over ``config.steps`` optimizer steps."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    boundaries = [int(config.steps * 0.5), int(config.steps * 0.75)]
    values = [config.learning_rate * f for f in (1.0, 0.1, 0.01)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    lr = make_learning_rate(config)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(lr)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
