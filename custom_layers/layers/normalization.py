"""``Normalization``: drop-in for ``keras.layers.Normalization`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.ops import rescaling


@keras.saving.register_keras_serializable(package="custom_layers")
class Normalization(keras.layers.Normalization):
    """Keras's feature normalisation, (x − μ) / max(√σ², ε) (or its ``invert``),
    whose gradient dx = dy / max(√σ², ε) is ``custom_layers.ops.rescaling.standardize``'s.

    A subclass of the stock layer: ``axis``, ``mean``/``variance`` given or
    learnt by ``adapt`` (non-trainable, so only x has a gradient), ``invert``
    and ``get_config`` are Keras's own; values are stock's bit for bit. Run
    by another backend inside ``tf.data`` it is stock's layer (no gradient
    is taken there).

    Input shape:
        any, matching the adapted statistics on ``axis``. Output shape: the input's.

    Example:

    >>> Normalization(mean=2.0, variance=4.0)(tf.constant([[0.0, 4.0]])).numpy()
    array([[-1.,  1.]], dtype=float32)
    """

    def call(self, inputs):
        if self.mean is None or self.backend.name != "tensorflow":
            return super().call(inputs)
        x = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        return rescaling.standardize(x, self.convert_weight(self.mean),
                                     self.convert_weight(self.variance), self.invert,
                                     keras.config.epsilon())
