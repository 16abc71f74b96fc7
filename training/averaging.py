"""Lookahead-style weight averaging: the network moves fast, then ends at an average.

Every ``every`` steps from ``start_step`` on, an average of every float
variable of the model (weights and batch-norm statistics) is updated,
a ← ρ·a + (1 − ρ)·w, and copied back into the network (w ← a), with
ρ = base · (t / T)^power rising from 0 to ``base`` over the run: little
averaging while the learning rate is high, strong averaging at the end
(airbench: base 0.95⁵, power 3, every 5 steps from the start; the preset
here starts at epoch 3, where ρ is still below 0.01 in a 14-epoch run). At the last
step the network is set to the average again, so the trained model is the
average; in between it trains on from each blend, as in the speed runs.
"""

from __future__ import annotations

from typing import List

import keras
import tensorflow as tf

BASE_DECAY = 0.95 ** 5
DECAY_POWER = 3.0


def averaged_variables(model: keras.Model) -> List[keras.Variable]:
    """The model's float variables (trainable or not), in a fixed order."""
    return [v for v in model.weights if v.dtype.startswith("float")]


class LookaheadAveraging(keras.callbacks.Callback):
    """Keeps and applies the average; its state is ``self.state`` (checkpoint it)."""

    def __init__(self, model: keras.Model, every: int, start_step: int, total_steps: int,
                 base_decay: float = BASE_DECAY, power: float = DECAY_POWER):
        super().__init__()
        if every < 1 or total_steps < 1:
            raise ValueError("LookaheadAveraging needs every and total_steps >= 1")
        self.every, self.start_step, self.total_steps = every, start_step, total_steps
        self.base_decay, self.power = base_decay, power
        self._variables = averaged_variables(model)
        self.averages = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                                     name="average") for v in self._variables]
        self.started = tf.Variable(False, trainable=False, name="averaging_started")
        self.state = tf.train.Checkpoint(averages=self.averages, started=self.started)

    def decay(self, step: int) -> float:
        return self.base_decay * (step / self.total_steps) ** self.power

    @tf.function
    def _blend(self, decay):
        for average, variable in zip(self.averages, self._variables):
            average.assign(decay * average + (1 - decay) * tf.cast(variable, average.dtype))
            variable.assign(average)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.start_step and step % self.every == 0:
            # The first update copies the weights in: the average starts where the network is.
            decay = self.decay(step) if bool(self.started.numpy()) else 0.0
            self.started.assign(True)
            self._blend(tf.constant(decay, tf.float32))
        elif bool(self.started.numpy()) and step == self.total_steps:
            self._blend(tf.constant(1.0, tf.float32))
