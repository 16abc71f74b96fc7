"""``GlobalAveragePooling1D``: drop-in for its Keras namesake with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class GlobalAveragePooling1D(keras.layers.GlobalAveragePooling1D):
    """Mean over the steps whose gradient is hand-written: ``ops.global_avg_pool``
    (dy / steps at every step), or with a mask ``ops.masked_mean`` (dy / the
    unmasked count at the unmasked steps, 0 elsewhere), as Keras computes it.

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first.

    Output shape:
        (N, C), or with ``keepdims`` (N, 1, C) / (N, C, 1).
    """

    def call(self, inputs, mask=None):
        axis = 1 if self.data_format == "channels_last" else 2
        x = cast_real_inputs(self, inputs)
        if mask is None:
            y = ops.global_avg_pool(x, (axis,))
        else:
            mask = tf.expand_dims(tf.cast(mask, tf.bool), 2 if axis == 1 else 1)
            y = ops.masked_mean(x, mask, axis)
        return y if self.keepdims else tf.squeeze(y, axis)
