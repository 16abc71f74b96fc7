"""The transposed convolution, built from the convolution's own hand-written pieces.

Conv2DTranspose maps x (N, H, W, C) to y (N, HO, WO, F) by the adjoint of the
convolution C_W that maps (N, HO, WO, F) to (N, H, W, C) with the kernel
W (KH, KW, F, C) (Keras's Conv2DTranspose layout). So its three passes are
the convolution's three, in another order:

    y  = C_Wᵀ x        the convolution's dx with x as its dy (``input_grad``)
    dx = C_W dy        a forward convolution of dy
    dW = dy ⋆ x        the convolution's dw with dy as its input and x as its dy
    db = Σ dy

The geometry is the convolution's of an (HO, WO) input: the output size
(Keras's, with ``output_padding``) is given, and must convolve back to (H, W).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import tensorflow as tf

from custom_layers.ops.convolution_backward import plan_backward
from custom_layers.ops.convolution_input_grad import input_grad
from custom_layers.ops.convolution_kernel_grad import kernel_grad
from custom_layers.ops.custom_op import accumulation_dtype, hand_written_op
from custom_layers.ops.shapes import spatial_padding, static_hw


def transposed_conv2d(x: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor],
                     output_hw: Sequence[int], strides: Tuple[int, int] = (1, 1),
                     padding: str = "valid", dilation: Tuple[int, int] = (1, 1)) -> tf.Tensor:
    """Transposed 2-D convolution with the hand-written passes of the module doc.

    Args:
        x: (N, H, W, C), H and W known.
        kernel: (KH, KW, F, C); cast to x's dtype in the forward, dW returned
            in its own dtype (accumulated in float32 for float16/bfloat16).
        bias: (F,) or None.
        output_hw: (HO, WO), the transposed convolution's output size.
        strides, padding, dilation: the convolution's (dilation and strides
            not both above 1).

    Returns:
        (N, HO, WO, F).
    """
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    hw = static_hw(x.shape, "transposed_conv2d")
    output_hw = tuple(int(v) for v in output_hw)
    strides, dilation = tuple(strides), tuple(dilation)
    pads = spatial_padding(output_hw, kernel.shape[:2], strides, padding, dilation)
    if (pads[0].out, pads[1].out) != hw:
        raise ValueError(f"transposed_conv2d: an output of {output_hw} convolves to "
                         f"{(pads[0].out, pads[1].out)}, not to the input's {hw}")
    filters = kernel.shape[2]
    plan = plan_backward([x.shape[0], *output_hw, filters], kernel.shape, strides, pads,
                         x.dtype, dilation)

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        y = input_grad(None, x, k, False, plan.input_grad)
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        return y, (x, k, kernel, bias)

    def backward(dy, saved):
        x, k, kernel, bias = saved
        dx = tf.nn.convolution(dy, k, strides=list(strides), padding=padding.upper(),
                               dilations=list(dilation))
        dw, _ = kernel_grad(dy, None, x, False, kernel.dtype.name, plan.kernel_grad)
        db = None
        if bias is not None:
            acc = accumulation_dtype(dy.dtype)
            db = tf.cast(tf.reduce_sum(tf.cast(dy, acc), axis=[0, 1, 2]), bias.dtype)
        return dx, dw, db

    return hand_written_op(forward, backward, x, kernel, bias)
