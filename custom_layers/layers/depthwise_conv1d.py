"""``DepthwiseConv1D``: drop-in for ``keras.layers.DepthwiseConv1D``, hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last, on_height_one)


@keras.saving.register_keras_serializable(package="custom_layers")
class DepthwiseConv1D(KernelTwin, keras.layers.DepthwiseConv1D):
    """1-D depthwise convolution as ``custom_layers.ops.depthwise_conv2d`` on a
    height-1 image (one formulation for both).

    A subclass of the stock layer: arguments, their checks, weights
    (``kernel`` (K, C, M), then ``bias`` (C·M,)) and ``get_config`` are
    Keras's own. The kernel is read in its own dtype (no autocast); Keras's
    activations run as hand-written ops after it; integer inputs are cast to
    the compute dtype.

    Args:
        kernel_size, strides, padding ("valid" or "same"), depth_multiplier,
        data_format, dilation_rate, activation, use_bias, depthwise_*/bias_*:
            as in Keras (strides and dilation_rate not both above 1).

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first; steps known.

    Output shape:
        (N, new_steps, C·M), or (N, C·M, new_steps) with channels_first.

    Example:

    >>> DepthwiseConv1D(3, depth_multiplier=2)(tf.zeros([1, 8, 4])).shape
    TensorShape([1, 6, 8])
    """

    def call(self, inputs):
        kernel = tf.expand_dims(tf.convert_to_tensor(self.kernel), 0)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        (s,), (d,) = self.strides, self.dilation_rate

        def nhwc(x):
            return ops.depthwise_conv2d(x, kernel, bias, strides=(s, s), padding=self.padding,
                                        dilation=(d, d))

        y = in_channels_last(self, on_height_one(nhwc), cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=False)
