"""SGD with per-variable learning-rate multipliers, L2 penalties and freezing.

The speed-run recipes train different weights differently: batch-norm
biases at 64× the learning rate, a whitening layer frozen from the start and
its bias after a few epochs, an L2 penalty on every weight. Keras's
optimizers take one rate for all; ``RuleSGD`` reads a ``VariableRule`` per
variable (the first whose pattern the variable's path contains).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import keras
from keras import ops


class VariableRule(NamedTuple):
    """How the variables whose path contains ``pattern`` train.

    lr_multiplier scales the step; l2 is the penalty coefficient on the mean
    loss (gradient += l2 · w, through momentum, as PyTorch's SGD
    weight_decay); until_step freezes the variable from that optimizer step
    on (0: never trained; None: always trained).
    """

    pattern: str
    lr_multiplier: float = 1.0
    l2: float = 0.0
    until_step: Optional[int] = None


@keras.saving.register_keras_serializable(package="training")
class RuleSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose update follows a ``VariableRule`` per variable.

    Variables no rule matches train as ``default`` says. With every
    multiplier 1, no L2 and nothing frozen it is exactly Keras's SGD.
    """

    def __init__(self, learning_rate, rules: Sequence[VariableRule] = (),
                 default: VariableRule = VariableRule(""), **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rules, self.default = tuple(rules), default

    def get_config(self):
        return {**super().get_config(), "rules": [list(rule) for rule in self.rules],
                "default": list(self.default)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        rules = [VariableRule(*rule) for rule in config.pop("rules", [])]
        default = VariableRule(*config.pop("default", [""]))
        return super().from_config({**config, "rules": rules, "default": default},
                                   custom_objects)

    def rule_for(self, variable) -> VariableRule:
        path = getattr(variable, "path", variable.name)
        return next((rule for rule in self.rules if rule.pattern in path), self.default)

    def update_step(self, gradient, variable, learning_rate):
        rule = self.rule_for(variable)
        if rule.until_step == 0:
            return
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if rule.l2:
            gradient = gradient + ops.cast(rule.l2, dtype) * variable
        lr = ops.cast(learning_rate, dtype) * ops.cast(rule.lr_multiplier, dtype)
        momentum = ops.cast(self.momentum, dtype)
        if rule.until_step is not None:
            # Frozen: no step and no momentum carried on (a plain lr of 0 would still drift).
            active = ops.cast(ops.less(self.iterations, rule.until_step), dtype)
            lr, momentum = lr * active, momentum * active
        if self.momentum == 0:
            self.assign_sub(variable, gradient * lr)
            return
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, m * momentum - gradient * lr)
        if self.nesterov:
            self.assign_add(variable, m * momentum - gradient * lr)
        else:
            self.assign_add(variable, m)
