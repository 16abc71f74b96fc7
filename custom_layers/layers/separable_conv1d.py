"""``SeparableConv1D``: drop-in for ``keras.layers.SeparableConv1D`` with hand-written backwards."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last, on_height_one)
from custom_layers.layers.separable_conv2d import separable_conv2d


@keras.saving.register_keras_serializable(package="custom_layers")
class SeparableConv1D(KernelTwin, keras.layers.SeparableConv1D):
    """1-D depthwise then pointwise convolution, as ``SeparableConv2D``'s two
    hand-written ops on a height-1 image.

    A subclass of the stock layer: arguments, their checks, weights
    (``depthwise_kernel`` (K, C, M), ``pointwise_kernel`` (1, C·M, F), then
    ``bias`` (F,)) and ``get_config`` are Keras's own. ReLU is fused into the
    pointwise op; Keras's other activations are hand-written ops after it.

    Args:
        filters, kernel_size, strides, padding ("valid" or "same"),
        data_format, dilation_rate, depth_multiplier, activation, use_bias,
        depthwise_*/pointwise_*/bias_*, activity_regularizer: as in Keras
            (strides and dilation_rate not both above 1).

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first; steps known.

    Output shape:
        (N, new_steps, F), or (N, F, new_steps) with channels_first.

    Example:

    >>> SeparableConv1D(16, 3, padding="same")(tf.zeros([2, 8, 4])).shape
    TensorShape([2, 8, 16])
    """

    def call(self, inputs):
        depthwise = tf.expand_dims(tf.convert_to_tensor(self.depthwise_kernel), 0)
        pointwise = tf.expand_dims(tf.convert_to_tensor(self.pointwise_kernel), 0)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        relu = self.activation is keras.activations.relu
        (s,), (d,) = self.strides, self.dilation_rate

        def nhwc(x):
            return separable_conv2d(x, depthwise, pointwise, bias, (s, s), self.padding, (d, d),
                                    relu)

        y = in_channels_last(self, on_height_one(nhwc), cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=relu)
