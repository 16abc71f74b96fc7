"""``MaxPooling1D``: drop-in for ``keras.layers.MaxPooling1D`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


def pool_1d(layer: keras.layers.Layer, op, inputs) -> tf.Tensor:
    """A 2-D pooling ``op`` on the steps of (N, steps, C) as a height-1 image."""
    x = cast_real_inputs(layer, inputs)
    if layer.data_format == "channels_first":
        x = tf.transpose(x, [0, 2, 1])
    y = tf.squeeze(op(tf.expand_dims(x, 1), (1, layer.pool_size[0]), (1, layer.strides[0]),
                      layer.padding), 1)
    return tf.transpose(y, [0, 2, 1]) if layer.data_format == "channels_first" else y


@keras.saving.register_keras_serializable(package="custom_layers")
class MaxPooling1D(keras.layers.MaxPooling1D):
    """1-D max pooling whose gradient is ``custom_layers.ops.max_pool2d``'s on a
    height-1 image (dy to each window's first maximum). Arguments and config
    are Keras's own.

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first.
    """

    def call(self, inputs):
        return pool_1d(self, ops.max_pool2d, inputs)
