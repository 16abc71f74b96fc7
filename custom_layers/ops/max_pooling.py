"""Max pooling: the NumPy reference (loops and vectorised) and the TF op.

    forward   y[n, i, j, c] = max of window (i, j) (SAME padding never counts)
    backward  each window's dy goes to one of its cells, the one a row-major
              scan keeps when it moves only to a strictly greater value:
              the first maximum on ties (TensorFlow's rule); overlapping
              windows add up

The scan makes the edge cases TensorFlow's too: a window whose cells are all
-inf sends dy to its first cell; NaN compares false, so a NaN in a window's
first cell keeps dy (nothing is greater) and a NaN anywhere else never gets
it. Padding cells are skipped, never chosen.

Shapes: x (N, H, W, C), y (N, HO, WO, C), HO/WO by ``shapes.spatial_padding``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import IntOrPair, dilate, hand_written_op, normalize_impl, numpy_op
from custom_layers.ops.shapes import (
    Pads,
    crop_hw,
    pad_hw,
    padded_shape,
    pool_geometry,
    window_view,
)

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _geometry(x, pool_size, strides, padding):
    return pool_geometry(x.shape, pool_size, strides, padding, "max_pool2d")


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
    pool_size, strides, pads = _geometry(x, pool_size, strides, padding)
    (ho, _, _), (wo, _, _) = pads
    x_pad = pad_hw(x, pads, -np.inf)
    out = np.empty((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for c in range(x.shape[3]):
                    r, s = i * strides[0], j * strides[1]
                    window = x_pad[n, r : r + pool_size[0], s : s + pool_size[1], c]
                    numbers = window[~np.isnan(window)]  # TensorFlow's maximum skips NaN
                    out[n, i, j, c] = numbers.max() if numbers.size else np.nan
    return out, (x, pool_size, strides, pads)


def _scan_choice(cells, valid) -> int:
    """Index of the cell a row-major scan keeps, moving only to a strictly greater value."""
    chosen = None
    for k, (value, ok) in enumerate(zip(cells, valid)):
        if ok and (chosen is None or value > cells[chosen]):
            chosen = k
    return chosen


def max_pool2d_backward_naive(dout, cache):
    """Routes each window's gradient to the cell the scan keeps (module docstring).

    That is the first maximum on ties, TensorFlow's choice; overlapping windows add up.

    Args:
        dout: (N, HO, WO, C).

    Returns:
        dx: (N, H, W, C).
    """
    x, pool_size, strides, pads = cache
    x_pad = pad_hw(x, pads, -np.inf)
    inside = pad_hw(np.ones((1, *x.shape[1:3], 1), bool), pads, False)[0, :, :, 0]
    dx_pad = np.zeros(x_pad.shape, dtype=dout.dtype)
    ph, pw = pool_size
    for n in range(dout.shape[0]):
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                for c in range(dout.shape[3]):
                    r, s = i * strides[0], j * strides[1]
                    window = x_pad[n, r : r + ph, s : s + pw, c].ravel()
                    valid = inside[r : r + ph, s : s + pw].ravel()
                    a, b = divmod(_scan_choice(window, valid), pw)
                    dx_pad[n, r + a, s + b, c] += dout[n, i, j, c]
    return crop_hw(dx_pad, pads, x.shape)


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Vectorised max pooling; same contract as ``max_pool2d_forward_naive``."""
    pool_size, strides, pads = _geometry(x, pool_size, strides, padding)
    out_hw = (pads[0].out, pads[1].out)
    windows = window_view(pad_hw(x, pads, -np.inf), pool_size, strides, out_hw)
    flat = windows.reshape(windows.shape[:4] + (-1,))  # (N, HO, WO, C, PH·PW)
    inside = pad_hw(np.ones((1, *x.shape[1:3], 1), bool), pads, False)
    valid = window_view(inside, pool_size, strides, out_hw).reshape(1, *out_hw, 1, -1)
    # The scan of the module docstring, one window offset at a time.
    chosen = np.full(flat.shape[:4], -1)
    best = np.zeros(flat.shape[:4], flat.dtype)
    for k in range(flat.shape[-1]):
        take = valid[..., k] & ((chosen < 0) | (flat[..., k] > best))
        chosen = np.where(take, k, chosen)
        best = np.where(take, flat[..., k], best)
    numbers = ~np.isnan(flat)  # TensorFlow's maximum skips NaN
    out = np.where(numbers.any(-1), np.max(np.where(numbers, flat, -np.inf), -1), np.nan)
    return out, (x, pool_size, strides, pads, chosen)


def max_pool2d_backward(dout, cache):
    """Vectorised backward of ``max_pool2d_forward``: one masked add per offset.

    Returns:
        dx: (N, H, W, C).
    """
    x, pool_size, strides, pads, chosen = cache
    ph, pw = pool_size
    sh, sw = strides
    ho, wo = dout.shape[1:3]
    dx_pad = np.zeros(padded_shape(x.shape, pads), dtype=dout.dtype)
    for a in range(ph):
        for b in range(pw):
            routed = np.where(chosen == a * pw + b, dout, 0)
            dx_pad[:, a : a + ho * sh : sh, b : b + wo * sw : sw, :] += routed
    return crop_hw(dx_pad, pads, x.shape)


# ----------------------------------------------------------------------------
# TensorFlow op
# ----------------------------------------------------------------------------


def _inside(pads: Pads, strides: Tuple[int, int], hw: Tuple[int, int], a: int, b: int):
    """(1, HO, WO, 1) bool: which windows' cell at offset (a, b) lies inside the input
    (None when every one does)."""
    axes = []
    for pad, stride, size, offset in zip(pads, strides, hw, (a, b)):
        row = np.arange(pad.out) * stride + offset - pad.before
        axes.append((row >= 0) & (row < size))
    inside = np.outer(axes[0], axes[1])
    return None if inside.all() else inside[None, :, :, None]


def _scan_choices(candidates, insides):
    """Per window offset (row-major), where the scan of the module docstring keeps it.

    candidates: (N, HO, WO, C) values at each offset; insides: ``_inside`` of each.
    Returns one bool tensor per offset: True where that offset gets dy.
    """
    index = tf.fill(tf.shape(candidates[0]), -1)
    best = candidates[0]
    for k, (candidate, inside) in enumerate(zip(candidates, insides)):
        take = tf.logical_or(index < 0, candidate > best)  # NaN compares false: never taken later
        if inside is not None:
            take = tf.logical_and(take, tf.constant(inside))
        index = tf.where(take, k, index)
        best = tf.where(take, candidate, best)
    return [tf.equal(index, k) for k in range(len(candidates))]


def _routed_in_tiles(x_pad, dy, pool_size, out_hw, pads, hw):
    """Pooling gradient when windows tile the input (stride == pool size).

    The padded input reshapes for free to (N, HO, PH, WO, PW, C); the offsets
    are scanned on the output grid and the per-offset results interleaved
    back into place (no additions).
    """
    (ph, pw), (ho, wo) = pool_size, out_hw
    n, c = tf.shape(dy)[0], dy.shape[3]
    windows = tf.reshape(x_pad[:, : ho * ph, : wo * pw, :], [n, ho, ph, wo, pw, c])
    offsets = [(a, b) for a in range(ph) for b in range(pw)]
    choices = _scan_choices([windows[:, :, a, :, b, :] for a, b in offsets],
                            [_inside(pads, pool_size, hw, a, b) for a, b in offsets])
    zero = tf.zeros([], dy.dtype)
    routed = [tf.where(choice, dy, zero) for choice in choices]
    tiles = tf.reshape(tf.stack(routed, axis=-1), [n, ho, wo, c, ph, pw])
    return tf.reshape(tf.transpose(tiles, [0, 1, 4, 2, 5, 3]), [n, ho * ph, wo * pw, c])


def _routed_by_offset(x_pad, dy, pool_size, strides, out_hw, pads, hw):
    """Pooling gradient for any windows, overlapping ones included: each
    offset's share is spread back (dilated by the stride) and added."""
    (ho, wo), (sh, sw) = out_hw, strides
    padded_hw = x_pad.shape[1:3]
    offsets = [(a, b) for a in range(pool_size[0]) for b in range(pool_size[1])]
    candidates = [x_pad[:, a : a + (ho - 1) * sh + 1 : sh, b : b + (wo - 1) * sw + 1 : sw, :]
                  for a, b in offsets]
    choices = _scan_choices(candidates, [_inside(pads, strides, hw, a, b) for a, b in offsets])
    zero = tf.zeros([], dy.dtype)
    dx_pad = None
    for (a, b), choice in zip(offsets, choices):
        spread = dilate(tf.where(choice, dy, zero), strides)
        spread = tf.pad(spread, [
            [0, 0],
            [a, padded_hw[0] - a - spread.shape[1]],
            [b, padded_hw[1] - b - spread.shape[2]],
            [0, 0],
        ])
        dx_pad = spread if dx_pad is None else dx_pad + spread
    return dx_pad


# XLA fuses the compares, selects and broadcasts below into a few loops, 3-4x
# faster than TensorFlow's kernels one at a time on CPU; it compiles once per
# input shape, also when the surrounding graph is not compiled.
@tf.function(jit_compile=True)
def max_pool2d_input_grad(x: tf.Tensor, dy: tf.Tensor, pool_size: Tuple[int, int],
                          strides: Tuple[int, int], pads: Pads) -> tf.Tensor:
    """dx of max pooling: each window's dy goes to the cell the scan keeps
    (the first maximum on ties; module docstring).

    Args:
        x: forward input, (N, H, W, C).
        dy: upstream gradient, (N, HO, WO, C).
        pool_size: (PH, PW). strides: (SH, SW). pads: ``spatial_padding``.

    Returns:
        dx: (N, H, W, C).
    """
    (ho, top, bottom), (wo, left, right) = pads
    h, w = x.shape[1], x.shape[2]
    padded_hw = (h + top + bottom, w + left + right)
    x_pad = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]],
                   constant_values=float("-inf"))
    if tuple(strides) == tuple(pool_size):
        dx_pad = _routed_in_tiles(x_pad, dy, pool_size, (ho, wo), pads, (h, w))
        # VALID pooling may leave rows/columns that no window covers.
        dx_pad = tf.pad(dx_pad, [[0, 0], [0, padded_hw[0] - ho * strides[0]],
                                 [0, padded_hw[1] - wo * strides[1]], [0, 0]])
    else:
        dx_pad = _routed_by_offset(x_pad, dy, pool_size, strides, (ho, wo), pads, (h, w))
    return dx_pad[:, top : top + h, left : left + w, :]


def max_pool2d(
    x: tf.Tensor,
    pool_size: IntOrPair = 2,
    strides: Optional[IntOrPair] = None,
    padding: str = "valid",
    impl: str = "tf",
) -> tf.Tensor:
    """2-D max pooling with a hand-written gradient.

    Args:
        x: (N, H, W, C), H and W known when traced.
        pool_size: int or (PH, PW).
        strides: int or (SH, SW); None means ``pool_size``.
        padding: "valid" (HO = (H - PH) // SH + 1) or "same" (HO = ceil(H / SH));
            padded positions never win a window.
        impl: "tf" or "numpy" (see ``conv.conv2d``).

    Returns:
        (N, HO, WO, C).
    """
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    pool_size, strides, pads = pool_geometry(x.shape, pool_size, strides, padding, "max_pool2d")
    padding = padding.lower()
    if impl == "numpy":
        def backward(dy, xa):
            return [max_pool2d_backward(dy, max_pool2d_forward(xa, pool_size, strides, padding)[1])]

        out_shape = [x.shape[0], pads[0].out, pads[1].out, x.shape[3]]
        return numpy_op("max_pool2d_numpy",
                        lambda xa: max_pool2d_forward(xa, pool_size, strides, padding)[0],
                        backward, out_shape, [x])

    def forward(x):
        return tf.nn.max_pool2d(x, list(pool_size), list(strides), padding.upper()), x

    def backward(dy, x):
        return (max_pool2d_input_grad(x, dy, pool_size, strides, pads),)

    return hand_written_op(forward, backward, x)
