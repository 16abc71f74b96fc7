"""``Conv3DTranspose``: drop-in for ``keras.layers.Conv3DTranspose`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import (KernelTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last)
from custom_layers.ops.volumetric_convolution import transposed_conv3d


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv3DTranspose(KernelTwin, keras.layers.Conv3DTranspose):
    """Transposed 3-D convolution as the adjoint of ``Conv3D``'s formulation
    (``custom_layers.ops.transposed_conv3d``): the hand-written 2-D transposed
    convolution on each depth plane, its KD·F channels folded back along the
    depth, then the bias; every pass hand-written.

    A subclass of the stock layer: arguments (strides, padding,
    ``output_padding``, dilation, both data formats), weights (``kernel``
    (KD, KH, KW, F, C), ``bias`` (F,)), output shapes and config are Keras's
    own. The kernel is read in its own dtype (no autocast); Keras's activations
    run as hand-written ops. Dilation runs here, where stock's CPU kernel
    refuses it.

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first; D, H, W known.

    Example:

    >>> Conv3DTranspose(4, 3, strides=2, padding="same")(tf.zeros([1, 2, 3, 3, 2])).shape
    TensorShape([1, 4, 6, 6, 4])
    """

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        shape = self.compute_output_shape(inputs.shape)
        output_dhw = shape[2:5] if self.data_format == "channels_first" else shape[1:4]

        def ndhwc(x):
            return transposed_conv3d(x, kernel, bias, output_dhw, tuple(self.strides),
                                     self.padding, tuple(self.dilation_rate))

        y = in_channels_last(self, ndhwc, cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=False)
