"""``Conv3D``: drop-in for ``keras.layers.Conv3D`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import (ConvolutionTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last)
from custom_layers.ops.volumetric_convolution import conv3d


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv3D(ConvolutionTwin, keras.layers.Conv3D):
    """3-D convolution as the hand-written 2-D one on the depth's taps
    (``custom_layers.ops.conv3d``): the depth unfolded into the channels, so
    dx, dw and db are ``ops.conv2d``'s, dx folded back over the depth taps.

    A subclass of the stock layer: arguments (``strides``, ``padding``,
    ``dilation_rate``, ``groups``, both data formats), weights (``kernel``
    (KD, KH, KW, C / groups, F), ``bias`` (F,)) and config are Keras's own.
    The kernel is read in its own dtype (no autocast); ReLU is fused into the
    2-D op, Keras's other activations run as hand-written ops after it. The
    unfolded input holds KD copies of x (the price of one 2-D convolution).

    Args:
        as in Keras, plus impl: "tf" (default) or "numpy" (the 2-D op's).

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first; D, H, W known.

    Example:

    >>> Conv3D(8, 3, padding="same")(tf.zeros([2, 4, 6, 6, 3])).shape
    TensorShape([2, 4, 6, 6, 8])
    """

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        relu = self.activation is keras.activations.relu

        def ndhwc(x):
            return conv3d(x, kernel, bias, self.strides, self.padding, self.dilation_rate,
                          self.groups, "relu" if relu else None, self.impl)

        y = in_channels_last(self, ndhwc, cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=relu)
