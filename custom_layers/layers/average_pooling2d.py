"""AveragePooling2D with a hand-written backward (``custom_layers.ops.average_pooling``)."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.ops import average_pooling as avg_pool


@keras.saving.register_keras_serializable(package="custom_layers")
class AveragePooling2D(keras.layers.AveragePooling2D):
    """Drop-in twin of ``keras.layers.AveragePooling2D``; only ``call``'s maths is replaced.

    SAME padding averages over the cells inside the input, as TensorFlow does.
    channels_first inputs are transposed to NHWC around the op.

    Input shape: (N, H, W, C), or (N, C, H, W) with channels_first.
    Output shape: (N, HO, WO, C) or (N, C, HO, WO); HO = ceil(H / SH) for
    SAME, (H - PH) // SH + 1 for VALID.
    """

    def call(self, inputs):
        channels_first = self.data_format == "channels_first"
        x = tf.transpose(inputs, [0, 2, 3, 1]) if channels_first else inputs
        y = avg_pool.avg_pool2d(x, self.pool_size, self.strides, self.padding)
        return tf.transpose(y, [0, 3, 1, 2]) if channels_first else y


AvgPool2D = AveragePooling2D
