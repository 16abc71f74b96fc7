"""DepthwiseConv2D with a hand-written backward (``custom_layers.ops.depthwise_convolution``)."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.ops import depthwise_convolution as depthwise
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Drop-in twin of ``keras.layers.DepthwiseConv2D``; only ``call``'s maths is replaced.

    Arguments, validation, weights and config are Keras's own. The kernel is
    read in its own dtype (no autocast), so under mixed precision dw and db
    accumulate in float32. ReLU runs as the hand-written ``ops.relu``; other
    activations keep Keras's autodiff. channels_first inputs are transposed to
    NHWC around the op (TensorFlow's CPU kernels are NHWC-only anyway).

    Input shape: (N, H, W, C), or (N, C, H, W) with channels_first.
    Output shape: (N, HO, WO, C·depth_multiplier), or channels first.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            # TensorFlow's depthwise kernel cannot do both; fail here, not at the first call.
            raise ValueError("strides > 1 cannot be combined with dilation_rate > 1. Received: "
                             f"strides={self.strides}, dilation_rate={self.dilation_rate}")
        self._autocast = False

    def call(self, inputs):
        x = cast_real_inputs(self, inputs)
        channels_first = self.data_format == "channels_first"
        if channels_first:
            x = tf.transpose(x, [0, 2, 3, 1])
        y = depthwise.depthwise_conv2d(
            x, tf.convert_to_tensor(self.kernel),
            tf.convert_to_tensor(self.bias) if self.use_bias else None,
            strides=tuple(self.strides), padding=self.padding,
            dilation=tuple(self.dilation_rate))
        if channels_first:
            y = tf.transpose(y, [0, 3, 1, 2])
        if self.activation is keras.activations.relu:
            return ops.relu(y)
        return self.activation(y)
