"""``Conv2D``: drop-in for ``keras.layers.Conv2D`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import (ConvolutionTwin, activate_after_op, cast_real_inputs,
                                       in_channels_last)
from custom_layers.ops.grouped_convolution import grouped_conv2d


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv2D(ConvolutionTwin, keras.layers.Conv2D):
    """2-D convolution whose gradient is ``custom_layers.ops.conv2d``'s.

    A subclass of the stock layer: arguments, their checks, weights (``kernel``
    (KH, KW, C / groups, F), then ``bias`` (F,)), ``built``, output shapes and
    ``get_config`` are Keras's own, so ``set_weights(stock.get_weights())`` works
    both ways; ``call`` hands the maths to the op:

    - ``dilation_rate`` > 1: the op's dx is the full convolution with the
      dilated rotated kernel and its dw reads x at the taps only.
    - ``groups`` = input channels: one depthwise op; other ``groups`` > 1:
      one op per group of channels, outputs concatenated.

    The kernel is read in its own dtype (no autocast), so under mixed precision
    dw and db accumulate in float32. ReLU is fused into the op with a
    hand-written gradient; GELU, softmax and linear are hand-written ops after
    it; other activations (a user's function) keep Keras's autodiff. Integer
    inputs are cast to the compute dtype. LoRA and quantization raise a
    ValueError.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        groups, activation, use_bias, kernel_*/bias_*, activity_regularizer:
            as in Keras.
        impl: "tf" (default) or "numpy" (the NumPy reference; CPU only, slow,
            no XLA, not exportable).

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first; H and W known.

    Output shape:
        (N, HO, WO, F) or (N, F, HO, WO): HO = ceil(H / SH) for "same",
        (H - (KH - 1) * D - 1) // SH + 1 for "valid".

    Example:

    >>> layer = Conv2D(32, 5, padding="same", activation="relu")
    >>> layer(tf.zeros([2, 28, 28, 1])).shape
    TensorShape([2, 28, 28, 32])
    """

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        relu = self.activation is keras.activations.relu

        def nhwc(x):
            return grouped_conv2d(x, kernel, bias, self.groups, self.strides, self.padding,
                                  self.dilation_rate, relu, self.impl)

        y = in_channels_last(self, nhwc, cast_real_inputs(self, inputs))
        return activate_after_op(self, y, fused=relu)

