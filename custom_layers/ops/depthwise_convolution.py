"""Depthwise convolution: NumPy reference (loops and vectorised) and the TF op.

Each input channel c is convolved with its own M = depth_multiplier kernels;
output channel c·M + m holds channel c's m-th result (TensorFlow's order).

Backward, per channel:
    dx_c = Σ_m full convolution of the stride-dilated dy_{c,m} with the
           180°-rotated (dilation-spaced) kernel w_{c,m}
    dw_{c,m}[i, j] = Σ_{n,y,x} x_pad[n, y·s + i·d, x·s + j·d, c] · dy_{c,m}[n, y, x]
    db = Σ dy over batch and space
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from custom_layers.ops.convolution_input_grad import InputGradPlan, interleave_phases, phase_axes
from custom_layers.ops.custom_op import accumulation_dtype, hand_written_op
from custom_layers.ops.shapes import (
    Pair,
    Pads,
    crop_hw,
    full_convolution_padding,
    pad_hw,
    spatial_padding,
    window_span,
)


def _geometry(hw: Pair, kernel_hw: Pair, strides: Pair, padding: str, dilation: Pair) -> Pads:
    if max(strides) > 1 and max(dilation) > 1:
        raise ValueError("strides > 1 cannot be combined with dilation_rate > 1. "
                         f"Received: strides={strides}, dilation_rate={dilation}")
    return spatial_padding(hw, kernel_hw, strides, padding, dilation)


def _tap(x_pad, i: int, j: int, out_hw: Pair, strides: Pair, dilation: Pair):
    """The input values kernel tap (i, j) meets at each output: (N, HO, WO, C)."""
    top, left = i * dilation[0], j * dilation[1]
    return x_pad[:, top: top + (out_hw[0] - 1) * strides[0] + 1: strides[0],
                 left: left + (out_hw[1] - 1) * strides[1] + 1: strides[1], :]


# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def depthwise_conv2d_forward_naive(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                                   strides: Pair = (1, 1), padding: str = "valid",
                                   dilation: Pair = (1, 1)) -> np.ndarray:
    """Plain loops. x: (N, H, W, C); w: (KH, KW, C, M); b: (C·M,) or None.

    Returns:
        out: (N, HO, WO, C·M). cache: for ``depthwise_conv2d_backward_naive``.
    """
    n, h, wd, c = x.shape
    kh, kw, _, m = w.shape
    pads = _geometry((h, wd), (kh, kw), strides, padding, dilation)
    x_pad = pad_hw(x, pads)
    out = np.zeros((n, pads[0].out, pads[1].out, c * m), x.dtype)
    for b_ in range(n):
        for y in range(pads[0].out):
            for x_ in range(pads[1].out):
                for ch in range(c):
                    for k in range(m):
                        total = 0.0
                        for i in range(kh):
                            for j in range(kw):
                                total += (x_pad[b_, y * strides[0] + i * dilation[0],
                                                x_ * strides[1] + j * dilation[1], ch]
                                          * w[i, j, ch, k])
                        out[b_, y, x_, ch * m + k] = total + (0 if b is None else b[ch * m + k])
    return out, (x, w, b, strides, padding, dilation)


def depthwise_conv2d_backward_naive(dout: np.ndarray, cache):
    """Backward of the loops, scattering each output's gradient.

    Returns:
        dx (N, H, W, C), dw (KH, KW, C, M), db (C·M,) or None.
    """
    x, w, b, strides, padding, dilation = cache
    n, h, wd, c = x.shape
    kh, kw, _, m = w.shape
    pads = _geometry((h, wd), (kh, kw), strides, padding, dilation)
    x_pad = pad_hw(x, pads)
    dx_pad = np.zeros(x_pad.shape, np.result_type(dout, w))
    dw = np.zeros(w.shape, np.result_type(dout, x))
    for b_ in range(n):
        for y in range(pads[0].out):
            for x_ in range(pads[1].out):
                for ch in range(c):
                    for k in range(m):
                        g = dout[b_, y, x_, ch * m + k]
                        for i in range(kh):
                            for j in range(kw):
                                r = y * strides[0] + i * dilation[0]
                                q = x_ * strides[1] + j * dilation[1]
                                dx_pad[b_, r, q, ch] += g * w[i, j, ch, k]
                                dw[i, j, ch, k] += g * x_pad[b_, r, q, ch]
    db = None if b is None else dout.sum(axis=(0, 1, 2))
    return crop_hw(dx_pad, pads, x.shape), dw, db


def depthwise_conv2d_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                             strides: Pair = (1, 1), padding: str = "valid",
                             dilation: Pair = (1, 1)):
    """Vectorised over batch and space, one step per kernel tap.

    Returns:
        (out, cache): out (N, HO, WO, C·M); cache for the backward.
    """
    n, h, wd, c = x.shape
    kh, kw, _, m = w.shape
    pads = _geometry((h, wd), (kh, kw), strides, padding, dilation)
    out_hw = (pads[0].out, pads[1].out)
    x_pad = pad_hw(x, pads)
    out = np.zeros((n, *out_hw, c, m), np.result_type(x, w))
    for i in range(kh):
        for j in range(kw):
            out += _tap(x_pad, i, j, out_hw, strides, dilation)[..., None] * w[i, j]
    out = out.reshape(n, *out_hw, c * m)
    if b is not None:
        out = out + b
    return out, (x, w, b, strides, padding, dilation)


def depthwise_conv2d_backward(dout: np.ndarray, cache):
    """dout: (N, HO, WO, C·M) -> (dx (N, H, W, C), dw (KH, KW, C, M), db (C·M,) or None).

    Each tap's window scatters dout·w back into the padded input and gathers
    x·dout into dw: the loop form of the two identities in the module docstring.
    """
    x, w, b, strides, padding, dilation = cache
    n, h, wd, c = x.shape
    kh, kw, _, m = w.shape
    pads = _geometry((h, wd), (kh, kw), strides, padding, dilation)
    out_hw = (pads[0].out, pads[1].out)
    x_pad = pad_hw(x, pads)
    dy = dout.reshape(n, *out_hw, c, m)
    dx_pad = np.zeros_like(x_pad, dtype=np.result_type(dout, w))
    dw = np.zeros_like(w, dtype=np.result_type(dout, x))
    for i in range(kh):
        for j in range(kw):
            dw[i, j] = np.einsum("nyxc,nyxcm->cm", _tap(x_pad, i, j, out_hw, strides, dilation), dy)
            _tap(dx_pad, i, j, out_hw, strides, dilation)[...] += np.einsum("nyxcm,cm->nyxc", dy, w[i, j])
    dx = crop_hw(dx_pad, pads, x.shape)
    db = None if b is None else dout.sum(axis=(0, 1, 2))
    return dx, dw, db


# ----------------------------------------------------------------------------
# TensorFlow op
# ----------------------------------------------------------------------------


def _input_grad(dy: tf.Tensor, kernel: tf.Tensor, hw: Pair, pads, strides: Pair,
                dilation: Pair) -> tf.Tensor:
    """dx (N, H, W, C): the full convolution of the dilated dy with the rotated kernel."""
    if strides != (1, 1):
        return _input_grad_by_phases(dy, kernel, hw, pads, strides)
    kh, kw, c, m = kernel.shape
    rotated = tf.reshape(tf.reverse(kernel, axis=[0, 1]), [kh, kw, c * m, 1])
    spans = [window_span(k, d) for k, d in zip((kh, kw), dilation)]
    explicit = full_convolution_padding(hw, spans, dy.shape[1:3], pads)
    per_output = tf.nn.depthwise_conv2d(dy, rotated, [1, 1, 1, 1], explicit,
                                        dilations=list(dilation))
    return _sum_multipliers(per_output, c, m)


def _sum_multipliers(t: tf.Tensor, c: int, m: int) -> tf.Tensor:
    """(N, H, W, C·M) -> (N, H, W, C): each input channel's M outputs added."""
    if m == 1:
        return t
    return tf.reduce_sum(tf.reshape(t, [tf.shape(t)[0], t.shape[1], t.shape[2], c, m]), -1)


def _input_grad_by_phases(dy: tf.Tensor, kernel: tf.Tensor, hw: Pair, pads,
                          strides: Pair) -> tf.Tensor:
    """dx of a strided depthwise convolution, one stride phase at a time.

    The stride-dilated dy is mostly zeros; dx's rows ≡ r_h and columns ≡ r_w
    (mod the stride) are instead the stride-1 correlation of dy itself with
    the rotated sub-kernel ``w[r_h::SH, r_w::SW]``, interleaved back (the
    ``subpixel`` form of ``Conv2D``'s dx, ``convolution_input_grad``).
    """
    kh, kw, c, m = kernel.shape
    plan = InputGradPlan("subpixel", tuple(hw), (kh, kw), tuple(strides), pads)
    rows, cols = phase_axes(plan)
    dy = dy[:, :rows.end, :cols.end, :]
    phases = []
    for ph in rows.phases:
        for pw in cols.phases:
            if not (ph.taps and pw.taps):
                phases.append(None)
                continue
            sub = tf.reverse(kernel[ph.r::strides[0], pw.r::strides[1]], axis=[0, 1])
            part = dy[:, ph.start:, pw.start:, :]
            padding = [[0, 0], [ph.pad_before, ph.pad_after], [pw.pad_before, pw.pad_after], [0, 0]]
            out = tf.nn.depthwise_conv2d(part, tf.reshape(sub, [ph.taps, pw.taps, c * m, 1]),
                                         [1, 1, 1, 1], padding)
            phases.append(_sum_multipliers(out, c, m))
    return interleave_phases(phases, plan)


def _padded(x: tf.Tensor, pads: Pads) -> tf.Tensor:
    """x (N, H, W, C) with the forward's zero padding on H and W."""
    return tf.pad(x, [[0, 0], [pads[0].before, pads[0].after], [pads[1].before, pads[1].after],
                      [0, 0]])


# Fallback dw: each tap's product summed over batch and space, fused by XLA
# into one pass per tap (an einsum became a batched matmul of a poor layout,
# ~50x slower). It reads x once per tap, ~10x slower than the form below.
@tf.function(jit_compile=True)
def _kernel_grad_by_taps(x: tf.Tensor, dy: tf.Tensor, kernel_shape, pads, strides: Pair,
                         dilation: Pair) -> tf.Tensor:
    """dw (KH, KW, C, M): per tap, the input it meets times dy, summed over batch and space."""
    kh, kw, c, m = kernel_shape
    x_pad = _padded(x, pads)
    out_hw = (pads[0].out, pads[1].out)
    n = tf.shape(dy)[0]
    dy = tf.reshape(dy, [n, out_hw[0], out_hw[1], c, m])
    taps = [tf.reduce_sum(_tap(x_pad, i, j, out_hw, strides, dilation)[..., None] * dy, [0, 1, 2])
            for i in range(kh) for j in range(kw)]
    return tf.reshape(tf.stack(taps), [kh, kw, c, m])


def _image_kernel_grad(x_pad: tf.Tensor, dy: tf.Tensor, kernel_shape, strides: Pair,
                       dilation: Pair) -> tf.Tensor:
    """One image's dw as one forward depthwise convolution: (1, KH, KW, C·M).

    dw[i, j, c, m] = Σ_{y,x} x_pad[y·s + i·d, x·s + j·d, c] · dy[y, x, c, m] is a
    depthwise correlation of the padded image with dy as its (HO, WO, C, M)
    filter, the filter dilated by the forward's stride and the output strided
    by its dilation; it reads the image once, where the taps read it KH·KW times.
    x_pad: (1, HP, WP, C); dy: (HO, WO, C·M).
    """
    kh, kw, c, m = kernel_shape
    filters = tf.reshape(dy, [dy.shape[0], dy.shape[1], c, m])
    if m > 1:  # a multiplier above 1 takes a slow kernel: one multiplier at a time
        parts = [_image_kernel_grad(x_pad, filters[..., k], (kh, kw, c, 1), strides, dilation)
                 for k in range(m)]
        return tf.reshape(tf.stack(parts, -1), [1, kh, kw, c * m])
    dw = tf.nn.depthwise_conv2d(x_pad, filters, [1, dilation[0], dilation[1], 1], "VALID",
                                dilations=list(strides))
    return dw[:, :kh, :kw]


def _in_xla() -> bool:
    """Whether the graph being built is compiled by XLA (``jit_compile=True``)."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # a TensorFlow without it: assume XLA, the form that always compiles
        return True
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _kernel_grad(x: tf.Tensor, dy: tf.Tensor, kernel_shape, pads, strides: Pair,
                 dilation: Pair) -> tf.Tensor:
    """dw (KH, KW, C, M), summed over the batch image by image (see ``_image_kernel_grad``).

    A batch known when traced is unrolled (independent convolutions the
    executor runs side by side); an unknown one is a loop (as fast), except
    under XLA, which refuses a loop's image slices of an empty batch. The
    dilation must be equal along both axes (it becomes the correlation's
    stride, which TensorFlow's depthwise kernel wants square). Otherwise the
    per-tap form.
    """
    n = x.shape[0]
    if dilation[0] != dilation[1] or (n is None and _in_xla()):
        return _kernel_grad_by_taps(x, dy, kernel_shape, pads, strides, dilation)
    if n == 0:  # an empty batch: nothing to sum
        return tf.zeros(kernel_shape, x.dtype)
    x_pad = _padded(x, pads)
    # Only the rows and columns some tap reaches: the correlation's output is then KH x KW.
    x_pad = x_pad[:, :(pads[0].out - 1) * strides[0] + window_span(kernel_shape[0], dilation[0]),
                  :(pads[1].out - 1) * strides[1] + window_span(kernel_shape[1], dilation[1])]

    def image(i):
        return _image_kernel_grad(x_pad[i][tf.newaxis], dy[i], kernel_shape, strides, dilation)

    if n is not None:
        return tf.reshape(tf.add_n([image(i) for i in range(n)]), kernel_shape)
    total = tf.zeros([1, kernel_shape[0], kernel_shape[1], kernel_shape[2] * kernel_shape[3]],
                     x.dtype)
    _, total = tf.while_loop(lambda i, _: i < tf.shape(x)[0],
                             lambda i, acc: (i + 1, acc + image(i)), (0, total))
    return tf.reshape(total, kernel_shape)


def depthwise_conv2d(x: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor] = None,
                     strides: Pair = (1, 1), padding: str = "valid",
                     dilation: Pair = (1, 1)) -> tf.Tensor:
    """Depthwise convolution with a hand-written gradient.

    Args:
        x: (N, H, W, C), H and W static.
        kernel: (KH, KW, C, M) (cast to x's dtype for the forward).
        bias: (C·M,) or None.
        strides, dilation: pairs of positive ints, not both above 1.
        padding: "valid" or "same".

    Returns:
        (N, HO, WO, C·M) in x's dtype. Under float16, dw and db accumulate in
        float32 and come back in the weights' dtype.
    """
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    bias = None if bias is None else tf.convert_to_tensor(bias)
    if x.shape.rank != 4 or None in x.shape[1:]:
        raise ValueError(f"depthwise_conv2d expects (N, H, W, C) with static H, W, C. "
                         f"Received: x.shape={x.shape}")
    if kernel.shape.rank != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(f"depthwise_conv2d: kernel must be (KH, KW, C, M) with C={x.shape[3]}. "
                         f"Received: kernel.shape={kernel.shape}")
    hw = (x.shape[1], x.shape[2])
    pads = _geometry(hw, tuple(kernel.shape[:2]), strides, padding, dilation)
    acc = accumulation_dtype(x.dtype)

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        y = tf.nn.depthwise_conv2d(x, k, [1, *strides, 1], padding.upper(),
                                   dilations=list(dilation))
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        return y, (x, k, kernel, bias)

    def backward(dy, saved):
        x, k, kernel, bias = saved
        dx = _input_grad(dy, k, hw, pads, strides, dilation)
        with tf.control_dependencies([dy]):  # the cast copies x: not right after the forward
            x_acc = tf.cast(x, acc)
        dw = _kernel_grad(x_acc, tf.cast(dy, acc), kernel.shape, pads, strides, dilation)
        db = None if bias is None else tf.cast(
            tf.reduce_sum(tf.cast(dy, acc), [0, 1, 2]), bias.dtype)
        return dx, tf.cast(dw, kernel.dtype), db

    return hand_written_op(forward, backward, x, kernel, bias)