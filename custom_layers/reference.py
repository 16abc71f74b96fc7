"""NumPy reference of every layer: forward/backward pairs, textbook maths.

Each op comes twice: a ``*_naive`` form written as plain loops that reads like
the textbook (the test oracle), and a vectorised form (strided views and
tensordot) fast enough to train with. Both return ``(out, cache)`` from the
forward and the input gradients from the backward.

Shapes use NHWC throughout: N batch, H/W height/width, C input channels,
F filters, KH/KW kernel, PH/PW pool window, HO/WO output height/width, D input
features, M output features. Output sizes follow TensorFlow's padding rule
(see ``padding.py``).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from custom_layers.padding import normalize_padding, normalize_tuple, spatial_padding

Cache = Tuple[Any, ...]


def _pad_hw(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    (_, th, bh), (_, tw, bw) = pads
    return np.pad(x, ((0, 0), (th, bh), (tw, bw), (0, 0)), constant_values=value)


def _padded_shape(shape, pads) -> Tuple[int, int, int, int]:
    (_, th, bh), (_, tw, bw) = pads
    return (shape[0], shape[1] + th + bh, shape[2] + tw + bw, shape[3])


def _crop_hw(x_pad: np.ndarray, pads, shape) -> np.ndarray:
    """Undoes ``_pad_hw``: the (N, H, W, C) interior of a padded array."""
    th, tw = pads[0].before, pads[1].before
    return x_pad[:, th : th + shape[1], tw : tw + shape[2], :]


def _conv_geometry(x, w, strides, padding):
    if x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[2]:
        raise ValueError(
            "conv2d expects x of shape (N, H, W, C) and w of shape (KH, KW, C, F). "
            f"Received: x.shape={x.shape}, w.shape={w.shape}"
        )
    strides = normalize_tuple(strides, "strides")
    padding = normalize_padding(padding)
    pads = spatial_padding(x.shape[1:3], w.shape[:2], strides, padding)
    return strides, pads


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------


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
    x_pad = _pad_hw(x, pads)
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
    x_pad = _pad_hw(x, pads)
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
    dx = _crop_hw(dx_pad, pads, x.shape)
    db = None if b is None else dout.sum(axis=(0, 1, 2))
    return dx, dw, db


def _conv_patches(x_pad, kernel_hw, strides, out_hw):
    """Strided view (N, HO, WO, C, KH, KW) of every window; no copy."""
    windows = sliding_window_view(x_pad, kernel_hw, axis=(1, 2))
    return windows[:, :: strides[0], :: strides[1]][:, : out_hw[0], : out_hw[1]]


def conv2d_forward(x, w, b, strides=1, padding="valid"):
    """Vectorised convolution; same contract as ``conv2d_forward_naive``."""
    strides, pads = _conv_geometry(x, w, strides, padding)
    out_hw = (pads[0].out, pads[1].out)
    patches = _conv_patches(_pad_hw(x, pads), w.shape[:2], strides, out_hw)
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
    x_pad = _pad_hw(x, pads)
    patches = _conv_patches(x_pad, (kh, kw), strides, (ho, wo))
    dw = np.tensordot(patches, dout, axes=([0, 1, 2], [0, 1, 2]))  # (C, KH, KW, F)
    dw = dw.transpose(1, 2, 0, 3)
    cols = np.tensordot(dout, w, axes=([3], [3]))  # (N, HO, WO, KH, KW, C)
    dx_pad = np.zeros(x_pad.shape, dtype=cols.dtype)
    sh, sw = strides
    for i in range(kh):
        for j in range(kw):
            dx_pad[:, i : i + ho * sh : sh, j : j + wo * sw : sw, :] += cols[:, :, :, i, j, :]
    dx = _crop_hw(dx_pad, pads, x.shape)
    db = None if b is None else dout.sum(axis=(0, 1, 2))
    return dx, dw, db


# ----------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------


def _pool_geometry(x, pool_size, strides, padding):
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects x of shape (N, H, W, C). Received: {x.shape}")
    pool_size = normalize_tuple(pool_size, "pool_size")
    strides = pool_size if strides is None else normalize_tuple(strides, "strides")
    padding = normalize_padding(padding)
    return pool_size, strides, spatial_padding(x.shape[1:3], pool_size, strides, padding)


def max_pool2d_forward_naive(x, pool_size=2, strides=None, padding="valid"):
    """Max pooling, plain loops. SAME padding never wins a window (-inf).

    Args:
        x: (N, H, W, C).
        pool_size: int or (PH, PW).
        strides: int or (SH, SW); defaults to ``pool_size``.
        padding: "valid" or "same".

    Returns:
        out: (N, HO, WO, C), each window's maximum. cache: for the backward.
    """
    pool_size, strides, pads = _pool_geometry(x, pool_size, strides, padding)
    (ho, _, _), (wo, _, _) = pads
    x_pad = _pad_hw(x, pads, -np.inf)
    out = np.empty((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for c in range(x.shape[3]):
                    r, s = i * strides[0], j * strides[1]
                    out[n, i, j, c] = x_pad[n, r : r + pool_size[0], s : s + pool_size[1], c].max()
    return out, (x, pool_size, strides, pads)


def max_pool2d_backward_naive(dout, cache):
    """Routes each window's gradient to its first maximum (row-major order).

    That is TensorFlow's choice on ties; overlapping windows add up.

    Args:
        dout: (N, HO, WO, C).

    Returns:
        dx: (N, H, W, C).
    """
    x, pool_size, strides, pads = cache
    x_pad = _pad_hw(x, pads, -np.inf)
    dx_pad = np.zeros(x_pad.shape, dtype=dout.dtype)
    ph, pw = pool_size
    for n in range(dout.shape[0]):
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                for c in range(dout.shape[3]):
                    r, s = i * strides[0], j * strides[1]
                    window = x_pad[n, r : r + ph, s : s + pw, c]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx_pad[n, r + a, s + b, c] += dout[n, i, j, c]
    return _crop_hw(dx_pad, pads, x.shape)


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Vectorised max pooling; same contract as ``max_pool2d_forward_naive``."""
    pool_size, strides, pads = _pool_geometry(x, pool_size, strides, padding)
    out_hw = (pads[0].out, pads[1].out)
    x_pad = _pad_hw(x, pads, -np.inf)
    windows = _conv_patches(x_pad, pool_size, strides, out_hw)  # (N, HO, WO, C, PH, PW)
    flat = windows.reshape(windows.shape[:4] + (-1,))
    argmax = flat.argmax(axis=-1)  # first maximum in row-major window order
    out = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
    return out, (x, pool_size, strides, pads, argmax)


def max_pool2d_backward(dout, cache):
    """Vectorised backward of ``max_pool2d_forward``: one masked add per offset.

    Returns:
        dx: (N, H, W, C).
    """
    x, pool_size, strides, pads, argmax = cache
    ph, pw = pool_size
    sh, sw = strides
    ho, wo = dout.shape[1:3]
    dx_pad = np.zeros(_padded_shape(x.shape, pads), dtype=dout.dtype)
    for a in range(ph):
        for b in range(pw):
            routed = np.where(argmax == a * pw + b, dout, 0)
            dx_pad[:, a : a + ho * sh : sh, b : b + wo * sw : sw, :] += routed
    return _crop_hw(dx_pad, pads, x.shape)


# ----------------------------------------------------------------------------
# Affine, ReLU, softmax cross-entropy
# ----------------------------------------------------------------------------


def _check_affine(x, w):
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            "affine expects x of shape (..., D) and w of shape (D, M). "
            f"Received: x.shape={x.shape}, w.shape={w.shape}"
        )


def affine_forward_naive(x, w, b):
    """Affine layer on the last axis, plain loops over rows and outputs.

    Args:
        x: (..., D). w: (D, M). b: (M,) or None.

    Returns:
        out: (..., M) = x · w + b. cache: (x, w, b).
    """
    _check_affine(x, w)
    rows = x.reshape(-1, w.shape[0])
    out = np.zeros((rows.shape[0], w.shape[1]), dtype=np.result_type(x, w))
    for n in range(rows.shape[0]):
        for m in range(w.shape[1]):
            out[n, m] = np.sum(rows[n] * w[:, m]) + (0 if b is None else b[m])
    return out.reshape(x.shape[:-1] + (w.shape[1],)), (x, w, b)


def affine_backward_naive(dout, cache):
    """Backward of the affine layer, one row at a time.

    Returns:
        dx (..., D) = dout · wᵀ, dw (D, M) = xᵀ · dout, db (M,) or None.
    """
    x, w, b = cache
    rows = x.reshape(-1, w.shape[0])
    drows = dout.reshape(-1, w.shape[1])
    dx = np.zeros(rows.shape, dtype=np.result_type(dout, w))
    dw = np.zeros(w.shape, dtype=np.result_type(dout, x))
    for n in range(rows.shape[0]):
        dx[n] = w @ drows[n]
        dw += np.outer(rows[n], drows[n])
    db = None if b is None else drows.sum(axis=0)
    return dx.reshape(x.shape), dw, db


def affine_forward(x, w, b):
    """Vectorised affine layer; same contract as ``affine_forward_naive``."""
    _check_affine(x, w)
    out = x @ w
    if b is not None:
        out = out + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Vectorised backward: dx = dout · wᵀ, dw = xᵀ · dout, db = Σ dout."""
    x, w, b = cache
    rows = x.reshape(-1, w.shape[0])
    drows = dout.reshape(-1, w.shape[1])
    dx = (drows @ w.T).reshape(x.shape)
    dw = rows.T @ drows
    db = None if b is None else drows.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """ReLU. Returns out (same shape as x) and the cache (x)."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (the subgradient at 0 is taken as 0)."""
    return np.where(cache > 0, dout, 0).astype(dout.dtype)


def softmax_loss(logits, labels):
    """Mean softmax cross-entropy and its gradient.

    Args:
        logits: (N, K) scores.
        labels: (N,) integer classes in [0, K).

    Returns:
        loss: scalar, ``-mean(log softmax(logits)[n, labels[n]])``.
        dlogits: (N, K), ``(softmax(logits) - onehot(labels)) / N``.
    """
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"softmax_loss expects logits (N, K) and labels (N,). "
            f"Received: {logits.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}).")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = logits.shape[0]
    loss = -log_probs[np.arange(n), labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n
