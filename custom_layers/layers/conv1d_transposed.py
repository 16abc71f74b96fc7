"""``Conv1DTranspose``: drop-in for ``keras.layers.Conv1DTranspose`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last, on_height_one)
from custom_layers.ops.transposed_convolution import transposed_conv2d


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv1DTranspose(KernelTwin, keras.layers.Conv1DTranspose):
    """Transposed 1-D convolution as ``custom_layers.ops.transposed_conv2d`` on a
    height-1 image (one formulation for both): forward the convolution's dx,
    dx a forward convolution, dW the convolution's kernel gradient.

    A subclass of the stock layer: arguments (strides, padding,
    ``output_padding``, dilation, both data formats), weights (``kernel``
    (K, F, C), ``bias`` (F,)), output shapes and config are Keras's own.
    The kernel is read in its own dtype (no autocast); Keras's activations
    run as hand-written ops.

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first; steps known.

    Example:

    >>> Conv1DTranspose(4, 3, strides=2, padding="same")(tf.zeros([1, 5, 2])).shape
    TensorShape([1, 10, 4])
    """

    def call(self, inputs):
        kernel = tf.expand_dims(tf.convert_to_tensor(self.kernel), 0)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        shape = self.compute_output_shape(inputs.shape)
        steps = shape[2] if self.data_format == "channels_first" else shape[1]
        (s,), (d,) = self.strides, self.dilation_rate

        def nhwc(x):
            return transposed_conv2d(x, kernel, bias, (1, steps), (1, s), self.padding, (1, d))

        y = in_channels_last(self, on_height_one(nhwc), cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=False)
