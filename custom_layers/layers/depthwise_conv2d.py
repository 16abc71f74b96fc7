"""``DepthwiseConv2D``: drop-in for ``keras.layers.DepthwiseConv2D`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last)


@keras.saving.register_keras_serializable(package="custom_layers")
class DepthwiseConv2D(KernelTwin, keras.layers.DepthwiseConv2D):
    """Depthwise convolution whose gradient is ``custom_layers.ops.depthwise_conv2d``'s.

    A subclass of the stock layer: arguments, their checks, weights
    (``kernel`` (KH, KW, C, M), then ``bias`` (C·M,)), ``built`` and
    ``get_config`` are Keras's own; ``call`` hands the maths to the op. The
    kernel is read in its own dtype (no autocast), so under mixed precision dw
    and db accumulate in float32. Keras's activations run as hand-written ops
    after it (a user's own function keeps Keras's autodiff). Integer inputs are cast to the
    compute dtype.

    Args:
        kernel_size, strides, padding, depth_multiplier, data_format,
        dilation_rate, activation, use_bias, depthwise_*/bias_*: as in Keras
            (strides and dilation_rate not both above 1).

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first; H and W known.

    Output shape:
        (N, HO, WO, C·M), or (N, C·M, HO, WO) with channels_first.

    Example:

    >>> DepthwiseConv2D(3, depth_multiplier=2)(tf.zeros([1, 8, 8, 4])).shape
    TensorShape([1, 6, 6, 8])
    """

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None

        def nhwc(x):
            return ops.depthwise_conv2d(x, kernel, bias, strides=tuple(self.strides),
                                        padding=self.padding, dilation=tuple(self.dilation_rate))

        y = in_channels_last(self, nhwc, cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=False)
