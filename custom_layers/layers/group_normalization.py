"""``GroupNormalization``: drop-in for ``keras.layers.GroupNormalization``, hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class GroupNormalization(keras.layers.GroupNormalization):
    """Keras's group normalisation whose gradients are ``custom_layers.ops.group_norm``'s
    closed form (dx, dγ, dβ; module doc of ``ops/group_normalization.py``).

    A subclass of the stock layer: arguments (``groups``, ``axis``,
    ``epsilon``, ``center``, ``scale``), their checks in ``build``, weights
    (per-channel ``gamma`` and ``beta``, float32 under mixed precision),
    initializers, regularizers, constraints and ``get_config`` are Keras's
    own; values are stock's bit for bit. Statistics and gradients are
    computed in float32 at least; the output is cast to the compute dtype.

    Input shape:
        (N, ..., C, ...) with the channel axis known. Output shape: the input's.

    Example:

    >>> GroupNormalization(groups=2)(tf.constant([[1.0, 3.0, 2.0, 6.0]])).numpy().round(3)
    array([[-1.,  1., -1.,  1.]], dtype=float32)
    """

    def call(self, inputs):
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else None
        beta = tf.convert_to_tensor(self.beta) if self.center else None
        x = real_inputs(self, inputs)
        y = ops.group_norm(x, gamma, beta, self.groups, self.axis, self.epsilon)
        return tf.cast(y, self.compute_dtype)
