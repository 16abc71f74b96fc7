"""``SeparableConv2D``: drop-in for ``keras.layers.SeparableConv2D`` with hand-written backwards."""

from __future__ import annotations

from typing import Optional, Tuple

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last)


@keras.saving.register_keras_serializable(package="custom_layers")
class SeparableConv2D(KernelTwin, keras.layers.SeparableConv2D):
    """Depthwise then pointwise convolution, both with hand-written gradients:
    ``custom_layers.ops.depthwise_conv2d`` (no bias) followed by
    ``custom_layers.ops.conv2d`` with the 1×1 pointwise kernel and the bias.

    A subclass of the stock layer: arguments, their checks, weights
    (``depthwise_kernel`` (KH, KW, C, M), ``pointwise_kernel`` (1, 1, C·M, F),
    then ``bias`` (F,)) and ``get_config`` are Keras's own. The kernels are
    read in their own dtype (no autocast), so under mixed precision their
    gradients accumulate in float32. ReLU is fused into the pointwise op;
    Keras's other activations are hand-written ops after it (a user's own
    function keeps Keras's autodiff). Integer inputs are cast to the
    compute dtype.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        depth_multiplier, activation, use_bias, depthwise_*/pointwise_*/bias_*,
        activity_regularizer: as in Keras (strides and dilation_rate not both
            above 1).

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first; H and W known.

    Output shape:
        (N, HO, WO, F), or (N, F, HO, WO) with channels_first.

    Example:

    >>> SeparableConv2D(16, 3, padding="same")(tf.zeros([2, 8, 8, 4])).shape
    TensorShape([2, 8, 8, 16])
    """

    def call(self, inputs):
        depthwise = tf.convert_to_tensor(self.depthwise_kernel)
        pointwise = tf.convert_to_tensor(self.pointwise_kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        relu = self.activation is keras.activations.relu

        def nhwc(x):
            return separable_conv2d(x, depthwise, pointwise, bias, tuple(self.strides),
                                    self.padding, tuple(self.dilation_rate), relu)

        y = in_channels_last(self, nhwc, cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=relu)


def separable_conv2d(x: tf.Tensor, depthwise: tf.Tensor, pointwise: tf.Tensor,
                     bias: Optional[tf.Tensor], strides: Tuple[int, int], padding: str,
                     dilation: Tuple[int, int], relu: bool) -> tf.Tensor:
    """x (N, H, W, C) -> (N, HO, WO, F): the depthwise op (kernel (KH, KW, C, M), no
    bias), then the 1x1 convolution op (kernel (1, 1, C·M, F)) with the bias and ReLU."""
    h = ops.depthwise_conv2d(x, depthwise, None, strides=strides, padding=padding,
                             dilation=dilation)
    return ops.conv2d(h, pointwise, bias, strides=1, padding="valid",
                      activation="relu" if relu else None)
