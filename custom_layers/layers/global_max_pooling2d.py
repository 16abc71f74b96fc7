"""GlobalMaxPooling2D with a hand-written backward (``custom_layers.ops.global_pooling``)."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.ops import global_pooling


@keras.saving.register_keras_serializable(package="custom_layers")
class GlobalMaxPooling2D(keras.layers.GlobalMaxPooling2D):
    """Drop-in twin of ``keras.layers.GlobalMaxPooling2D``; only ``call``'s maths is replaced.

    The gradient goes to the maximum of each channel, split evenly among
    tied maxima (as stock Keras's gradient of ``reduce_max``).

    Input shape: (N, H, W, C), or (N, C, H, W) with channels_first.
    Output shape: (N, C), or with ``keepdims`` (N, 1, 1, C) / (N, C, 1, 1).
    """

    def call(self, inputs):
        axes = (2, 3) if self.data_format == "channels_first" else (1, 2)
        y = global_pooling.global_max_pool(inputs, axes)
        return y if self.keepdims else tf.squeeze(y, axes)
