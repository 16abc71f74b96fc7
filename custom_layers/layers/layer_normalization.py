"""``LayerNormalization``: drop-in for ``keras.layers.LayerNormalization`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class LayerNormalization(keras.layers.LayerNormalization):
    """Keras's layer normalisation whose gradients are ``custom_layers.ops.layer_norm``'s
    closed form (dx, dγ, dβ; module doc of ``ops/layer_normalization.py``).

    A subclass of the stock layer: arguments (any ``axis``, ``epsilon``,
    ``center``, ``scale``, ``rms_scaling``), weights (``gamma``, ``beta``,
    float32 under mixed precision), their initializers, regularizers and
    constraints, and ``get_config`` are Keras's own; values are stock's bit
    for bit. As stock, the input is not cast to the compute dtype: statistics
    and gradients are computed in float32 at least, the output is cast.

    Input shape:
        any, with the normalised axes known. Output shape: the input's.

    Example:

    >>> LayerNormalization()(tf.constant([[1.0, 3.0]])).numpy().round(3)
    array([[-0.999,  0.999]], dtype=float32)
    """

    def call(self, inputs):
        gamma = tf.convert_to_tensor(self.gamma) if self.gamma is not None else None
        beta = tf.convert_to_tensor(self.beta) if self.beta is not None else None
        x = real_inputs(self, inputs)
        if not x.dtype.is_floating:  # as Keras: at least float32, and no autocast of the input
            x = tf.cast(x, tf.float32)
        y = ops.layer_norm(x, gamma, beta, self.axis, self.epsilon, self.rms_scaling)
        return tf.cast(y, self.compute_dtype)
