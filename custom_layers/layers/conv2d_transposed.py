"""``Conv2DTranspose``: drop-in for ``keras.layers.Conv2DTranspose`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last)
from custom_layers.ops.transposed_convolution import transposed_conv2d


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv2DTranspose(KernelTwin, keras.layers.Conv2DTranspose):
    """Transposed convolution whose three passes are the hand-written convolution's
    (``custom_layers.ops.transposed_conv2d``): the forward is its dx, dx a
    forward convolution, dW its kernel gradient with the roles of input and dy
    swapped.

    A subclass of the stock layer: arguments (strides, padding,
    ``output_padding``, dilation, both data formats), weights (``kernel``
    (KH, KW, F, C), ``bias`` (F,)), output shapes and config are Keras's own.
    The kernel is read in its own dtype (no autocast). Keras's activations run
    as hand-written ops. Values agree with stock's to rounding (stock's
    forward is TensorFlow's Conv2DBackpropInput kernel).

    Example:

    >>> Conv2DTranspose(4, 3, strides=2, padding="same")(tf.zeros([1, 5, 5, 2])).shape
    TensorShape([1, 10, 10, 4])
    """

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        shape = self.compute_output_shape(inputs.shape)
        output_hw = shape[2:4] if self.data_format == "channels_first" else shape[1:3]

        def nhwc(x):
            return transposed_conv2d(x, kernel, bias, output_hw, tuple(self.strides),
                                    self.padding, tuple(self.dilation_rate))

        y = in_channels_last(self, nhwc, cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=False)
