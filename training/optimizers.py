"""Optimizers and learning-rate schedules from the run's config."""

from __future__ import annotations

from typing import Union

import keras

from training.config import TrainConfig
from training.schedules import Triangle
from training.variable_rules import RuleSGD, VariableRule


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
    if config.lr_schedule == "triangle":
        return Triangle(config.learning_rate, config.steps)
    boundaries = [int(config.steps * 0.5), int(config.steps * 0.75)]
    values = [config.learning_rate * f for f in (1.0, 0.1, 0.01)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# Weight decay applies to kernels only, as is usual for batch-normalized nets.
NO_DECAY = ["bias", "gamma", "beta"]


# Batch-norm biases (Keras names them beta), whose learning rate may be scaled.
BN_BIAS = "/beta"
WHITENING_BIAS = "whiten/bias"


def variable_rules(config: TrainConfig, steps_per_epoch: int) -> tuple:
    """The ``VariableRule``s of the run's flags (none when every default holds)."""
    rules = []
    if config.whiten_bias_epochs:
        rules.append(VariableRule(WHITENING_BIAS, l2=config.l2,
                                  until_step=config.whiten_bias_epochs * steps_per_epoch))
    if config.bn_bias_lr_multiplier != 1.0:
        multiplier = config.bn_bias_lr_multiplier
        rules.append(VariableRule(BN_BIAS, multiplier, config.l2 / multiplier))
    return tuple(rules)


def make_optimizer(config: TrainConfig, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    """The optimizer of ``config``; ``steps_per_epoch`` places epoch-based rules."""
    lr = make_learning_rate(config)
    decay = {"weight_decay": config.weight_decay} if config.weight_decay else {}
    rules = variable_rules(config, steps_per_epoch)
    if config.optimizer in ("sgd", "momentum") and (rules or config.l2):
        momentum = config.momentum if config.optimizer == "momentum" else 0.0
        optimizer = RuleSGD(lr, rules, VariableRule("", l2=config.l2), momentum=momentum,
                            nesterov=config.optimizer == "momentum", **decay)
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(lr, **decay)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(lr, **decay)
    elif config.optimizer == "momentum":
        optimizer = keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, **decay)
    else:
        optimizer = keras.optimizers.RMSprop(lr, **decay)
    if decay:
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
