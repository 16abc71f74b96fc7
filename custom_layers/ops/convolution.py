"""2-D convolution: the NumPy reference (loops and vectorised) and the TF op.

    forward   y[n, i, j, f] = Σ x_pad[n, i·SH + a, j·SW + b, c] · w[a, b, c, f] + b[f]
    backward  dx = full convolution of the stride-dilated dy with the
                   180°-rotated kernel (channels swapped)
              dw = correlation of the padded input with dy
              db = Σ dy

Shapes: x (N, H, W, C), kernel (KH, KW, C, F), bias (F,), y (N, HO, WO, F);
HO/WO by ``shapes.spatial_padding``. A dilated kernel's taps are DH, DW
apart in both identities. How each is computed for a given layer (matrix
products, sub-pixel phases, per-tap products, forward convolutions) is
planned in ``convolution_backward``. The NumPy reference knows no dilation:
it convolves with the kernel spread with zeros (``spread_kernel``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from custom_layers.ops.activations import activate, activate_numpy
from custom_layers.ops.convolution_backward import conv2d_gradients, plan_backward
from custom_layers.ops.custom_op import (
    IntOrPair,
    dilate,
    hand_written_op,
    normalize_activation,
    normalize_impl,
    numpy_op,
)
from custom_layers.ops.shapes import (
    crop_hw,
    normalize_padding,
    normalize_tuple,
    pad_hw,
    spatial_padding,
    static_hw,
    window_view,
)

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _conv_geometry(x, w, strides, padding):
    if x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[2]:
        raise ValueError(
            "conv2d expects x of shape (N, H, W, C) and w of shape (KH, KW, C, F). "
            f"Received: x.shape={x.shape}, w.shape={w.shape}"
        )
    strides = normalize_tuple(strides, "strides")
    pads = spatial_padding(x.shape[1:3], w.shape[:2], strides, normalize_padding(padding))
    return strides, pads


def conv2d_forward_naive(x, w, b, strides=1, padding="valid"):
    """Convolution (cross-correlation, as in every DL framework), plain loops.

    Args:
        x: input, (N, H, W, C).
        w: kernel, (KH, KW, C, F).
        b: bias, (F,), or None.
        strides: int or (SH, SW).
        padding: "valid" or "same".

    Returns:
        out: (N, HO, WO, F), ``out[n, i, j, f] = sum(x_pad[n, i*SH:i*SH+KH,
        j*SW:j*SW+KW, :] * w[..., f]) + b[f]``.
        cache: what ``conv2d_backward_naive`` needs.
    """
    strides, pads = _conv_geometry(x, w, strides, padding)
    (ho, _, _), (wo, _, _) = pads
    kh, kw, _, f_count = w.shape
    x_pad = pad_hw(x, pads)
    out = np.zeros((x.shape[0], ho, wo, f_count), dtype=np.result_type(x, w))
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                r, c = i * strides[0], j * strides[1]
                window = x_pad[n, r : r + kh, c : c + kw, :]
                for f in range(f_count):
                    out[n, i, j, f] = np.sum(window * w[:, :, :, f])
    if b is not None:
        out += b
    return out, (x, w, b, strides, pads)


def conv2d_backward_naive(dout, cache):
    """Backward of ``conv2d_forward_naive``: scatter each output's gradient.

    Args:
        dout: upstream gradient, (N, HO, WO, F).
        cache: from the forward.

    Returns:
        dx (N, H, W, C), dw (KH, KW, C, F), db (F,) or None.
    """
    x, w, b, strides, pads = cache
    kh, kw, _, f_count = w.shape
    x_pad = pad_hw(x, pads)
    dx_pad = np.zeros_like(x_pad, dtype=np.result_type(dout, w))
    dw = np.zeros_like(w, dtype=np.result_type(dout, x))
    for n in range(dout.shape[0]):
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                r, c = i * strides[0], j * strides[1]
                for f in range(f_count):
                    g = dout[n, i, j, f]
                    dx_pad[n, r : r + kh, c : c + kw, :] += g * w[:, :, :, f]
                    dw[:, :, :, f] += g * x_pad[n, r : r + kh, c : c + kw, :]
    dx = crop_hw(dx_pad, pads, x.shape)
    db = None if b is None else dout.sum(axis=(0, 1, 2))
    return dx, dw, db


def conv2d_forward(x, w, b, strides=1, padding="valid"):
    """Vectorised convolution; same contract as ``conv2d_forward_naive``."""
    strides, pads = _conv_geometry(x, w, strides, padding)
    out_hw = (pads[0].out, pads[1].out)
    patches = window_view(pad_hw(x, pads), w.shape[:2], strides, out_hw)
    # patches: (N, HO, WO, C, KH, KW) x w: (KH, KW, C, F) -> (N, HO, WO, F)
    out = np.tensordot(patches, w, axes=([3, 4, 5], [2, 0, 1]))
    if b is not None:
        out = out + b
    return out, (x, w, b, strides, pads)


def conv2d_backward(dout, cache):
    """Vectorised backward of ``conv2d_forward``.

    dw is the correlation of the padded input with ``dout``; dx gathers
    ``dout · wᵀ`` per kernel offset and adds it back where that offset read
    from (col2im), which equals the full convolution of ``dout`` with the
    180°-rotated kernel.

    Returns:
        dx (N, H, W, C), dw (KH, KW, C, F), db (F,) or None.
    """
    x, w, b, strides, pads = cache
    kh, kw = w.shape[:2]
    ho, wo = dout.shape[1:3]
    x_pad = pad_hw(x, pads)
    patches = window_view(x_pad, (kh, kw), strides, (ho, wo))
    dw = np.tensordot(patches, dout, axes=([0, 1, 2], [0, 1, 2]))  # (C, KH, KW, F)
    dw = dw.transpose(1, 2, 0, 3)
    cols = np.tensordot(dout, w, axes=([3], [3]))  # (N, HO, WO, KH, KW, C)
    dx_pad = np.zeros(x_pad.shape, dtype=cols.dtype)
    sh, sw = strides
    for i in range(kh):
        for j in range(kw):
            dx_pad[:, i : i + ho * sh : sh, j : j + wo * sw : sw, :] += cols[:, :, :, i, j, :]
    dx = crop_hw(dx_pad, pads, x.shape)
    db = None if b is None else dout.sum(axis=(0, 1, 2))
    return dx, dw, db


# ----------------------------------------------------------------------------
# TensorFlow op
# ----------------------------------------------------------------------------


def spread_kernel(kernel: tf.Tensor, dilation_rate: IntOrPair) -> tf.Tensor:
    """(KH, KW, C, F) -> ((KH-1)·DH+1, (KW-1)·DW+1, C, F) with zeros between the taps.

    A dilated convolution is the ordinary one with this kernel, so its dx and
    dw follow the same identities; the gradient of the spreading (pad and
    reshape) reads dw back at the taps.
    """
    rate = normalize_tuple(dilation_rate, "dilation_rate")
    if rate == (1, 1):
        return kernel
    kh, kw, c, f = kernel.shape
    spread = dilate(tf.reshape(kernel, [1, kh, kw, c * f]), rate)
    return tf.reshape(spread, [spread.shape[1], spread.shape[2], c, f])


def _conv2d_tf(x, kernel, bias, strides, padding, activation, dilation):
    h, w = static_hw(x.shape, "conv2d")
    kernel_hw = tuple(kernel.shape[:2])
    pads = spatial_padding((h, w), kernel_hw, strides, padding, dilation)
    relu = activation == "relu"
    plan = plan_backward(x.shape, kernel.shape, strides, pads, x.dtype, dilation)

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        # tf.nn.convolution, as stock's: a dilated kernel runs through
        # space-to-batch on CPUs, whose kernels have no dilated gradients.
        y = tf.nn.convolution(x, k, strides=list(strides), padding=padding.upper(),
                              dilations=list(dilation))
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        y = activate(y, activation)
        # y only for the fused ReLU's mask: kept otherwise, it would double
        # the activations a network holds for its backward.
        return y, (x, k, kernel, bias, y if relu else None)

    def backward(dy, saved):
        x, k, kernel, bias, y = saved
        dx, dw, db = conv2d_gradients(x, y, dy, k, relu, kernel.dtype.name, plan)
        db = None if bias is None else tf.cast(db, bias.dtype)
        return dx, dw, db

    return hand_written_op(forward, backward, x, kernel, bias)


def _conv2d_numpy(x, kernel, bias, strides, padding):
    pads = spatial_padding(static_hw(x.shape, "conv2d"), kernel.shape[:2], strides, padding)
    out_shape = [x.shape[0], pads[0].out, pads[1].out, kernel.shape[3]]
    has_bias = bias is not None

    def split(arrays):
        return (arrays[0], arrays[1], arrays[2] if has_bias else None)

    def forward(*arrays):
        xa, wa, ba = split(arrays)
        return conv2d_forward(xa, wa, ba, strides, padding)[0]

    def backward(dy, *arrays):
        xa, wa, ba = split(arrays)
        return conv2d_backward(dy, conv2d_forward(xa, wa, ba, strides, padding)[1])

    return numpy_op("conv2d_numpy", forward, backward, out_shape,
                    [x, kernel, bias])


def conv2d(
    x: tf.Tensor,
    kernel: tf.Tensor,
    bias: Optional[tf.Tensor] = None,
    strides: IntOrPair = 1,
    padding: str = "valid",
    activation: Optional[str] = None,
    impl: str = "tf",
    dilation_rate: IntOrPair = 1,
) -> tf.Tensor:
    """2-D convolution (cross-correlation) with a hand-written gradient.

    Args:
        x: (N, H, W, C), float16/bfloat16/float32/float64.
        kernel: (KH, KW, C, F); cast to x's dtype for the forward.
        bias: (F,) or None.
        strides: int or (SH, SW).
        padding: "valid" (HO = (H - KH) // SH + 1) or "same" (HO = ceil(H / SH),
            TensorFlow's padding rule).
        activation: None or "relu", fused into the op.
        dilation_rate: int or (DH, DW): the kernel's taps DH rows and DW
            columns apart; above 1 only with strides 1, as in TensorFlow.
        impl: "tf" (TF ops, any device, XLA) or "numpy" (the NumPy reference via
            ``tf.numpy_function``: CPU only, slow, no XLA, not exportable).

    Returns:
        (N, HO, WO, F) in x's dtype.

    Raises:
        ValueError: on bad ranks, channel mismatch, bad strides/padding/impl.
    """
    strides = normalize_tuple(strides, "strides")
    dilation = normalize_tuple(dilation_rate, "dilation_rate")
    if max(strides) > 1 and max(dilation) > 1:
        raise ValueError("conv2d takes strides or dilation_rate above 1, not both. "
                         f"Received strides={strides}, dilation_rate={dilation}")
    padding = normalize_padding(padding)
    activation = normalize_activation(activation)
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    static_hw(x.shape, "conv2d")
    if kernel.shape.rank != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            "conv2d expects a kernel of shape (KH, KW, C, F) whose C matches the "
            f"input's channels. Received x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    if bias is not None:
        bias = tf.convert_to_tensor(bias)
        if bias.shape.as_list() != [kernel.shape[3]]:
            raise ValueError(
                f"conv2d expects a bias of shape ({kernel.shape[3]},). "
                f"Received bias.shape={bias.shape}"
            )
    if impl == "numpy":
        # The reference knows no dilation: it convolves with the spread kernel.
        kernel = spread_kernel(kernel, dilation)
        return activate_numpy(_conv2d_numpy(x, kernel, bias, strides, padding), activation)
    return _conv2d_tf(x, kernel, bias, strides, padding, activation, dilation)
