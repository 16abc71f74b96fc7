"""3-D convolution and its transposed form, as the 2-D ops on the depth's taps.

    forward   y[n, d, i, j, f] = Σ x_pad[n, d·SD + a, i·SH + b, j·SW + c, ch]
                                   · w[a, b, c, ch, f] + b[f]

Summing over the depth tap ``a`` last, this is one 2-D convolution: unfold
the depth (``unfolding.unfold``: x (N, D, H, W, C) -> (N, DO, H, W, KD, C)),
move DO into the batch and the KD taps into the channels, and convolve the
(N·DO, H, W, KD·C) images with the kernel read as (KH, KW, KD·C, F). Its
gradients are then the 2-D op's (dx: the full convolution with the rotated
kernel, dw: the correlation of the input with dy, db = Σ dy), dx folded back
over the depth taps by unfold's own backward. The transposed convolution is
the adjoint of the whole chain: the 2-D transposed op on (N·D, H, W, C), its
KD·F output channels folded back along the depth (``unfolding.fold``). One
formulation serves every rank: ``Conv1D`` is the 2-D op on a height of 1.

Shapes: x (N, D, H, W, C), kernel (KD, KH, KW, C / groups, F) for the
convolution and (KD, KH, KW, F, C) for the transposed one (Keras's layouts),
bias (F,). The NumPy reference convolves without dilation (spread the kernel
with zeros, as the 2-D reference does).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops import unfolding
from custom_layers.ops.convolution import conv2d_backward, conv2d_forward
from custom_layers.ops.custom_op import accumulation_dtype, hand_written_op
from custom_layers.ops.grouped_convolution import grouped_conv2d
from custom_layers.ops.shapes import axis_padding, normalize_padding, normalize_triple
from custom_layers.ops.transposed_convolution import transposed_conv2d

Triple = Tuple[int, int, int]

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _geometry(x_shape, w_shape, strides, padding, dilation=(1, 1, 1)):
    if len(x_shape) != 5 or len(w_shape) != 5:
        raise ValueError("conv3d expects x of shape (N, D, H, W, C) and a kernel of shape "
                         f"(KD, KH, KW, C, F). Received: x.shape={tuple(x_shape)}, "
                         f"kernel.shape={tuple(w_shape)}")
    strides = normalize_triple(strides, "strides")
    dilation = normalize_triple(dilation, "dilation_rate")
    padding = normalize_padding(padding)
    if None in tuple(x_shape[1:4]):
        raise ValueError("conv3d needs the input's depth, height and width known when it "
                         f"is traced (the backward is planned from them). Received shape "
                         f"{x_shape}; give the model a fixed input size")
    pads = tuple(axis_padding(s, k, st, padding, d)
                 for s, k, st, d in zip(x_shape[1:4], w_shape[:3], strides, dilation))
    return strides, dilation, padding, pads


def conv3d_forward_naive(x, w, b, strides=1, padding="valid"):
    """3-D convolution (cross-correlation), plain loops.

    Args:
        x: (N, D, H, W, C).
        w: (KD, KH, KW, C, F).
        b: (F,) or None.
        strides: int or (SD, SH, SW).
        padding: "valid" or "same".

    Returns:
        out: (N, DO, HO, WO, F), ``out[n, d, i, j, f] = sum(x_pad[n, d*SD:d*SD+KD,
        i*SH:i*SH+KH, j*SW:j*SW+KW, :] * w[..., f]) + b[f]``.
        cache: what ``conv3d_backward_naive`` needs.
    """
    strides, _, _, pads = _geometry(x.shape, w.shape, strides, padding)
    x_pad = np.pad(x, [(0, 0), *((p.before, p.after) for p in pads), (0, 0)])
    (kd, kh, kw), f_count = w.shape[:3], w.shape[4]
    out = np.zeros((x.shape[0], *(p.out for p in pads), f_count), dtype=np.result_type(x, w))
    for n in range(x.shape[0]):
        for d in range(pads[0].out):
            for i in range(pads[1].out):
                for j in range(pads[2].out):
                    r, s, t = d * strides[0], i * strides[1], j * strides[2]
                    window = x_pad[n, r:r + kd, s:s + kh, t:t + kw, :]
                    for f in range(f_count):
                        out[n, d, i, j, f] = np.sum(window * w[..., f])
    if b is not None:
        out += b
    return out, (x, w, b, strides, pads)


def conv3d_backward_naive(dout, cache):
    """Backward of ``conv3d_forward_naive``, plain loops: every output cell sends
    ``g · w`` back to the window it read and adds ``g · window`` to dw.

    Returns:
        dx (N, D, H, W, C), dw (KD, KH, KW, C, F), db (F,) or None.
    """
    x, w, b, strides, pads = cache
    x_pad = np.pad(x, [(0, 0), *((p.before, p.after) for p in pads), (0, 0)])
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    kd, kh, kw = w.shape[:3]
    for n in range(dout.shape[0]):
        for d in range(dout.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    r, s, t = d * strides[0], i * strides[1], j * strides[2]
                    for f in range(dout.shape[4]):
                        g = dout[n, d, i, j, f]
                        dx_pad[n, r:r + kd, s:s + kh, t:t + kw, :] += g * w[..., f]
                        dw[..., f] += g * x_pad[n, r:r + kd, s:s + kh, t:t + kw, :]
    (_, d0, _), (_, h0, _), (_, w0, _) = pads
    dx = dx_pad[:, d0:d0 + x.shape[1], h0:h0 + x.shape[2], w0:w0 + x.shape[3], :]
    db = None if b is None else dout.sum(axis=(0, 1, 2, 3))
    return dx, dw, db


def conv3d_forward(x, w, b, strides=1, padding="valid"):
    """Vectorised ``conv3d_forward_naive`` by this module's formulation: the depth
    unfolded into the channels, one 2-D convolution (``conv2d_forward``)."""
    strides, _, padding, pads = _geometry(x.shape, w.shape, strides, padding)
    (kd, kh, kw, c, f), n = w.shape, x.shape[0]
    taps, unfold_cache = unfolding.unfold_forward(x, 1, kd, strides[0], 1, pads[0][1:])
    images = taps.reshape(n * pads[0].out, *x.shape[2:4], kd * c)
    kernel2d = w.transpose(1, 2, 0, 3, 4).reshape(kh, kw, kd * c, f)
    out, conv_cache = conv2d_forward(images, kernel2d, b, strides[1:], padding)
    return out.reshape(n, pads[0].out, *out.shape[1:]), (unfold_cache, conv_cache, taps.shape,
                                                         w.shape)


def conv3d_backward(dout, cache):
    """Vectorised backward of ``conv3d_forward``: the 2-D backward, dx folded back
    over the depth taps (``unfold_backward``), dw read back as (KD, KH, KW, C, F)."""
    unfold_cache, conv_cache, taps_shape, w_shape = cache
    d_images, dw2d, db = conv2d_backward(dout.reshape(-1, *dout.shape[2:]), conv_cache)
    dx = unfolding.unfold_backward(d_images.reshape(taps_shape), unfold_cache)
    kd, kh, kw, c, f = w_shape
    return dx, dw2d.reshape(kh, kw, kd, c, f).transpose(2, 0, 1, 3, 4), db


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


def conv3d(x: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor] = None,
           strides=1, padding: str = "valid", dilation_rate=1, groups: int = 1,
           activation: Optional[str] = None, impl: str = "tf") -> tf.Tensor:
    """3-D convolution whose gradient is the hand-written 2-D op's on the depth's taps.

    Args:
        x: (N, D, H, W, C); D, H and W known when traced.
        kernel: (KD, KH, KW, C / groups, F).
        bias: (F,) or None.
        strides, dilation_rate: ints or triples (not both above 1 on height/width).
        padding: "valid" or "same".
        groups: channel groups (C and F divisible by it).
        activation: None or "relu" (fused into the 2-D op).
        impl: the 2-D op's: "tf" or "numpy".

    Returns:
        (N, DO, HO, WO, F).
    """
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    strides, dilation, padding, pads = _geometry(x.shape, kernel.shape, strides, padding,
                                                 dilation_rate)
    (kd, kh, kw, c_group, f), (_, _, h, w, c) = kernel.shape, x.shape
    taps = unfolding.unfold(x, 1, kd, strides[0], dilation[0], pads[0][1:])
    if groups > 1:  # each group's channels stay together: (G, KD, C / G)
        taps = tf.reshape(taps, [-1, pads[0].out, h, w, kd, groups, c // groups])
        taps = tf.transpose(taps, [0, 1, 2, 3, 5, 4, 6])
    images = tf.reshape(taps, [-1, h, w, kd * c])
    kernel2d = tf.reshape(tf.transpose(kernel, [1, 2, 0, 3, 4]), [kh, kw, kd * c_group, f])
    y = grouped_conv2d(images, kernel2d, bias, groups, strides[1:], padding, dilation[1:],
                       activation == "relu", impl)
    return tf.reshape(y, [-1, pads[0].out, pads[1].out, pads[2].out, f])


def transposed_conv3d(x: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor],
                      output_dhw: Sequence[int], strides=1, padding: str = "valid",
                      dilation=1) -> tf.Tensor:
    """Transposed 3-D convolution: the adjoint of ``conv3d``'s chain, every pass
    hand-written (the 2-D transposed op, the fold, the bias).

    Args:
        x: (N, D, H, W, C); D, H, W known.
        kernel: (KD, KH, KW, F, C).
        bias: (F,) or None.
        output_dhw: the output's (DO, HO, WO), which must convolve back to (D, H, W).
        strides, padding, dilation: the convolution's.

    Returns:
        (N, DO, HO, WO, F).
    """
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    (kd, kh, kw, f, c), (_, d, h, w, _) = kernel.shape, x.shape
    if None in (d, h, w):
        raise ValueError("transposed_conv3d needs the input's depth, height and width known "
                         f"when it is traced. Received shape {x.shape}")
    output_dhw = tuple(int(v) for v in output_dhw)
    strides = normalize_triple(strides, "strides")
    dilation = normalize_triple(dilation, "dilation_rate")
    depth = axis_padding(output_dhw[0], kd, strides[0], normalize_padding(padding),
                         dilation[0])
    if depth.out != d:
        raise ValueError(f"transposed_conv3d: an output depth of {output_dhw[0]} convolves to "
                         f"{depth.out}, not to the input's {d}")
    kernel2d = tf.reshape(tf.transpose(kernel, [1, 2, 0, 3, 4]), [kh, kw, kd * f, c])
    planes = transposed_conv2d(tf.reshape(x, [-1, h, w, c]), kernel2d, None, output_dhw[1:],
                               strides[1:], padding, dilation[1:])
    planes = tf.reshape(planes, [-1, d, *output_dhw[1:], kd, f])
    y = unfolding.fold(planes, 1, output_dhw[0], strides[0], dilation[0], depth[1:])
    return y if bias is None else add_bias(y, bias)


def add_bias(y: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """y + bias over the last axis (bias cast to y's dtype); db = Σ dy, summed in
    float32 under float16/bfloat16 and returned in the bias's dtype."""
    y, bias = tf.convert_to_tensor(y), tf.convert_to_tensor(bias)

    def forward(y, bias):
        return tf.nn.bias_add(y, tf.cast(bias, y.dtype)), bias.dtype

    def backward(dy, bias_dtype):
        acc = accumulation_dtype(dy.dtype)
        axes = list(range(dy.shape.rank - 1))
        return dy, tf.cast(tf.reduce_sum(tf.cast(dy, acc), axis=axes), bias_dtype)

    return hand_written_op(forward, backward, y, bias)


__all__ = ["add_bias", "conv3d", "conv3d_backward", "conv3d_backward_naive", "conv3d_forward",
           "conv3d_forward_naive", "transposed_conv3d"]
