"""Learning-rate schedules the Keras ones lack."""

from __future__ import annotations

from typing import Any, Dict

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="training")
class Triangle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear from ``start``·lr up to lr at ``peak``·steps, then linear down to ``end``·lr.

    The speed runs' one-cycle shape (airbench: start 0.2, peak 0.23, end 0.07):
    a short warm-up without a cold start, then a long linear decay that stops
    short of 0. Past ``steps`` it stays at ``end``·lr.
    """

    def __init__(self, learning_rate: float, steps: int, start: float = 0.2,
                 peak: float = 0.23, end: float = 0.07):
        if not steps >= 1 or not 0 <= peak <= 1:
            raise ValueError(f"Triangle needs steps >= 1 and peak in [0, 1]. "
                             f"Received: steps={steps!r}, peak={peak!r}")
        self.learning_rate, self.steps = float(learning_rate), int(steps)
        self.start, self.peak, self.end = float(start), float(peak), float(end)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        top = max(round(self.peak * self.steps), 1)
        rising = self.start + (1 - self.start) * step / top
        falling = 1 + (self.end - 1) * (step - top) / max(self.steps - top, 1)
        factor = tf.where(step < top, rising, tf.maximum(falling, self.end))
        return self.learning_rate * factor

    def get_config(self) -> Dict[str, Any]:
        return {"learning_rate": self.learning_rate, "steps": self.steps,
                "start": self.start, "peak": self.peak, "end": self.end}
