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
        if config.warmup_steps:
            warmup = min(config.warmup_steps, config.steps)
            return keras.optimizers.schedules.CosineDecay(
                0.0, max(config.steps - warmup, 1), warmup_target=config.learning_rate,
                warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    boundaries = [int(config.steps * 0.5), int(config.steps * 0.75)]
    values = [config.learning_rate * f for f in (1.0, 0.1, 0.01)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# Weight decay applies to kernels only, as is usual for batch-normalized nets.
NO_DECAY = ["bias", "gamma", "beta"]


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    lr = make_learning_rate(config)
    decay = {"weight_decay": config.weight_decay} if config.weight_decay else {}
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(lr, **decay)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(lr, **decay)
    elif config.optimizer == "momentum":
        optimizer = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **decay)
    else:
        optimizer = keras.optimizers.RMSprop(lr, **decay)
    if decay:
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
