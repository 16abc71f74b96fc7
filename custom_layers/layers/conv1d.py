"""``Conv1D``: drop-in for ``keras.layers.Conv1D`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import ConvolutionTwin, activate_after_op, cast_real_inputs
from custom_layers.ops import padding as padding_ops
from custom_layers.ops.grouped_convolution import grouped_conv2d


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv1D(ConvolutionTwin, keras.layers.Conv1D):
    """1-D convolution as the hand-written 2-D one on a height-1 image: the
    gradients are ``custom_layers.ops.conv2d``'s, so one formulation serves both.

    A subclass of the stock layer: arguments (``padding`` "valid", "same" or
    "causal", ``strides``, ``dilation_rate``, ``groups``), weights (``kernel``
    (K, C / groups, F), ``bias`` (F,)) and config are Keras's own. "causal"
    pads the start with the hand-written ``ops.zero_pad``. Keras's activations
    run as hand-written ops; LoRA raises a ValueError.

    Args:
        as in Keras, plus impl: "tf" (default) or "numpy".

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first; steps known.

    Example:

    >>> Conv1D(8, 3, padding="causal")(tf.zeros([2, 10, 4])).shape
    TensorShape([2, 10, 8])
    """

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        relu = self.activation is keras.activations.relu
        x = cast_real_inputs(self, inputs)
        if self.data_format == "channels_first":
            x = tf.transpose(x, [0, 2, 1])
        padding = self.padding
        if padding == "causal":
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            x = padding_ops.zero_pad(x, [(0, 0), (left, 0), (0, 0)])
            padding = "valid"
        y = grouped_conv2d(tf.expand_dims(x, 1), tf.expand_dims(kernel, 0), bias, self.groups,
                           (1, self.strides[0]), padding, (1, self.dilation_rate[0]), relu,
                           self.impl)
        y = tf.squeeze(y, 1)
        if self.data_format == "channels_first":
            y = tf.transpose(y, [0, 2, 1])
        return activate_after_op(self, y, fused=relu)
