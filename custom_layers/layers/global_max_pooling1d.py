"""``GlobalMaxPooling1D``: drop-in for its Keras namesake with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class GlobalMaxPooling1D(keras.layers.GlobalMaxPooling1D):
    """Maximum over the steps whose gradient is ``custom_layers.ops.global_max_pool``'s
    (dy split evenly among tied maxima, as stock). Arguments and config are Keras's own.

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first.
    """

    def call(self, inputs):
        axis = 1 if self.data_format == "channels_last" else 2
        y = ops.global_max_pool(cast_real_inputs(self, inputs), (axis,))
        return y if self.keepdims else tf.squeeze(y, axis)
