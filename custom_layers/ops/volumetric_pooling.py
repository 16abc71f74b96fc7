"""3-D max and average pooling, as the 2-D ops on each depth plane and a
reduction over the depth's taps.

A (PD, PH, PW) window is a box, so pooling it is pooling each of its PD
planes over (PH, PW) and then reducing those PD results: pool every depth
plane with the hand-written 2-D op (the planes in the batch), unfold the
depth (``unfolding.unfold``), and reduce the tap axis:

    max   the first tap of the window's largest plane maximum: a depth scan
          that moves only to a strictly greater value, after the 2-D op's own
          row-major scan, so dy reaches the first maximum in (depth, height,
          width) order (TensorFlow's rule in 2-D); padding never wins
    avg   Σ over the taps of the planes' means, times 1 / (taps inside the
          input): SAME windows average only the cells inside the input, whose
          count in a box is the product of the per-axis counts

Both backwards are the reduction's (dy to the chosen tap; dy / count to
every tap), then unfold's (fold back over the depth) and the 2-D op's.
Shapes: x (N, D, H, W, C), y (N, DO, HO, WO, C), by ``shapes.axis_padding``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops import unfolding
from custom_layers.ops.average_pooling import avg_pool2d, avg_pool2d_backward, avg_pool2d_forward
from custom_layers.ops.custom_op import hand_written_op
from custom_layers.ops.max_pooling import max_pool2d
from custom_layers.ops.shapes import (AxisPadding, axis_padding, normalize_padding,
                                      normalize_triple)

Triple = Tuple[int, int, int]


def pool3d_geometry(shape: Sequence[Optional[int]], pool_size, strides, padding: str,
                    op_name: str) -> Tuple[Triple, Triple, Tuple[AxisPadding, ...]]:
    """(pool_size, strides, per-axis padding) of a 3-D pooling; strides None = pool_size."""
    if len(shape) != 5:
        raise ValueError(f"{op_name} expects a 5-D input (N, D, H, W, C). Received shape "
                         f"{tuple(shape)}")
    if None in tuple(shape[1:4]):
        raise ValueError(f"{op_name} needs the input's depth, height and width known when it "
                         f"is traced. Received shape {tuple(shape)}")
    pool_size = normalize_triple(pool_size, "pool_size")
    strides = pool_size if strides is None else normalize_triple(strides, "strides")
    padding = normalize_padding(padding)
    pads = tuple(axis_padding(s, k, st, padding)
                 for s, k, st in zip(shape[1:4], pool_size, strides))
    return pool_size, strides, pads


def _valid_taps(depth: AxisPadding, length: int, window: int, stride: int) -> np.ndarray:
    """(DO, PD) bools: which taps of each output's depth window lie inside the input."""
    starts = np.arange(depth.out)[:, None] * stride - depth.before + np.arange(window)[None]
    return (starts >= 0) & (starts < length)


# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _box(index, pads, pool_size, strides, dims):
    """The slices of output cell ``index``'s window inside the input."""
    return tuple(slice(max(i * s - p.before, 0), min(i * s - p.before + k, n))
                 for i, p, k, s, n in zip(index, pads, pool_size, strides, dims))


def pool3d_forward_naive(x: np.ndarray, kind: str, pool_size=2, strides=None,
                         padding: str = "valid"):
    """3-D max or average pooling, plain loops over each window's cells inside the input.

    Returns:
        out: (N, DO, HO, WO, C). cache: for ``pool3d_backward_naive``.
    """
    pool_size, strides, pads = pool3d_geometry(x.shape, pool_size, strides, padding,
                                               f"{kind}_pool3d")
    out = np.zeros((x.shape[0], *(p.out for p in pads), x.shape[4]), dtype=x.dtype)
    for index in np.ndindex(*out.shape[1:4]):
        window = x[(slice(None), *_box(index, pads, pool_size, strides, x.shape[1:4]))]
        reduce = np.max if kind == "max" else np.mean
        out[(slice(None), *index)] = reduce(window, axis=(1, 2, 3))
    return out, (x, kind, pool_size, strides, pads)


def pool3d_backward_naive(dout: np.ndarray, cache) -> np.ndarray:
    """dx: each window's dy to its first maximum in (depth, height, width) order, or
    dy / count to each of its cells."""
    x, kind, pool_size, strides, pads = cache
    dx = np.zeros_like(x)
    for index in np.ndindex(*dout.shape[1:4]):
        box = (slice(None), *_box(index, pads, pool_size, strides, x.shape[1:4]))
        window, g = x[box], dout[(slice(None), *index)]
        if kind == "avg":
            dx[box] += g[:, None, None, None] / np.prod(window.shape[1:4])
            continue
        flat = window.reshape(window.shape[0], -1, window.shape[4])
        first = flat.argmax(axis=1)  # the first maximum of the scan
        grad = np.zeros_like(flat)
        np.put_along_axis(grad, first[:, None], g[:, None], axis=1)
        dx[box] += grad.reshape(window.shape)
    return dx


def avg_pool3d_forward(x: np.ndarray, pool_size=2, strides=None, padding: str = "valid"):
    """Vectorised 3-D average pooling by the module's formulation: the 2-D
    reference on each plane, the depth unfolded, taps summed over their count."""
    pool_size, strides, pads = pool3d_geometry(x.shape, pool_size, strides, padding,
                                               "avg_pool3d")
    n, d = x.shape[:2]
    planes, plane_cache = avg_pool2d_forward(x.reshape(n * d, *x.shape[2:]), pool_size[1:],
                                             strides[1:], padding)
    planes = planes.reshape(n, d, *planes.shape[1:])
    taps, unfold_cache = unfolding.unfold_forward(planes, 1, pool_size[0], strides[0], 1,
                                                  pads[0][1:])
    inside = _valid_taps(pads[0], d, pool_size[0], strides[0]).sum(axis=1)
    scale = (1.0 / inside)[None, :, None, None, None]
    return taps.sum(axis=-2) * scale, (plane_cache, unfold_cache, planes.shape, scale,
                                       pool_size[0])


def avg_pool3d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Vectorised backward of ``avg_pool3d_forward``: dy / count to every tap, folded
    back over the depth, then the 2-D reference's backward on each plane."""
    plane_cache, unfold_cache, planes_shape, scale, window = cache
    d_taps = np.repeat((dout * scale)[..., None, :], window, axis=-2)
    d_planes = unfolding.unfold_backward(d_taps, unfold_cache)
    n, d = planes_shape[:2]
    dx = avg_pool2d_backward(d_planes.reshape(n * d, *planes_shape[2:]), plane_cache)
    return dx.reshape(n, d, *dx.shape[1:])


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


def _depth_taps(x: tf.Tensor, kind: str, pool_size: Triple, strides: Triple, padding: str,
                pads) -> tf.Tensor:
    """Each plane pooled by the 2-D op, then the depth unfolded: (N, DO, HO, WO, PD, C)."""
    _, d, h, w, c = x.shape
    plane_op = max_pool2d if kind == "max" else avg_pool2d
    planes = plane_op(tf.reshape(x, [-1, h, w, c]), pool_size[1:], strides[1:], padding)
    planes = tf.reshape(planes, [-1, d, pads[1].out, pads[2].out, c])
    fill = float("-inf") if kind == "max" else 0.0
    return unfolding.unfold(planes, 1, pool_size[0], strides[0], 1, pads[0][1:], fill)


def _tap_max(taps: tf.Tensor, valid: np.ndarray) -> tf.Tensor:
    """Max over the tap axis by a scan from each window's first tap inside the input,
    moving only to a strictly greater value; dy goes to the tap it ends on."""
    masks = [tf.constant(valid[:, k].reshape(1, -1, 1, 1, 1)) for k in range(valid.shape[1])]
    starts = [tf.constant((valid[:, k] & ~valid[:, :k].any(axis=1)).reshape(1, -1, 1, 1, 1))
              for k in range(valid.shape[1])]

    def forward(taps):
        best, chosen = taps[..., 0, :], tf.zeros_like(taps[..., 0, :], dtype=tf.int32)
        for k in range(1, valid.shape[1]):
            tap = taps[..., k, :]
            take = masks[k] & (starts[k] | (tap > best))
            best = tf.where(take, tap, best)
            chosen = tf.where(take, k, chosen)
        return best, chosen

    def backward(dy, chosen):
        zero = tf.zeros_like(dy)
        return (tf.stack([tf.where(chosen == k, dy, zero) for k in range(valid.shape[1])],
                         axis=-2),)

    return hand_written_op(forward, backward, taps)


def _tap_mean(taps: tf.Tensor, scale: np.ndarray) -> tf.Tensor:
    """Σ over the tap axis times ``scale`` (DO,): dy · scale to every tap."""
    window = taps.shape[-2]

    def forward(taps):
        s = tf.constant(scale.reshape(1, -1, 1, 1, 1), taps.dtype)
        return tf.reduce_sum(taps, axis=-2) * s, s

    def backward(dy, s):
        share = tf.expand_dims(dy * s, -2)
        return (tf.repeat(share, window, axis=-2),)

    return hand_written_op(forward, backward, taps)


def max_pool3d(x: tf.Tensor, pool_size=2, strides=None, padding: str = "valid") -> tf.Tensor:
    """3-D max pooling, (N, D, H, W, C) -> (N, DO, HO, WO, C), with the hand-written
    backward of the module doc (dy to the first maximum of each window)."""
    x = tf.convert_to_tensor(x)
    pool_size, strides, pads = pool3d_geometry(x.shape, pool_size, strides, padding,
                                               "max_pool3d")
    taps = _depth_taps(x, "max", pool_size, strides, padding, pads)
    return _tap_max(taps, _valid_taps(pads[0], x.shape[1], pool_size[0], strides[0]))


def avg_pool3d(x: tf.Tensor, pool_size=2, strides=None, padding: str = "valid") -> tf.Tensor:
    """3-D average pooling, (N, D, H, W, C) -> (N, DO, HO, WO, C), over the cells
    inside the input, with the hand-written backward of the module doc."""
    x = tf.convert_to_tensor(x)
    pool_size, strides, pads = pool3d_geometry(x.shape, pool_size, strides, padding,
                                               "avg_pool3d")
    taps = _depth_taps(x, "avg", pool_size, strides, padding, pads)
    inside = _valid_taps(pads[0], x.shape[1], pool_size[0], strides[0]).sum(axis=1)
    return _tap_mean(taps, 1.0 / inside)
