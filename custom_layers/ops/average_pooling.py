"""Average pooling: the NumPy reference (loops and vectorised) and the TF op.

Shapes are NHWC: x (N, H, W, C), output (N, HO, WO, C) with HO = ceil(H / SH)
for SAME and (H - PH) // SH + 1 for VALID (``custom_layers.ops.shapes``).

Average pooling divides each window's sum by the number of its cells that
lie inside the input (TensorFlow's SAME rule: padding never counts):

    forward   y[i, j] = Σ_window x / count[i, j]
    backward  dx[h, w] = Σ_{windows (i, j) that hold (h, w)} dy[i, j] / count[i, j]

The backward is a stride-1 window sum of dy / count dilated by the strides:
a forward average pool over the dilated, padded tensor, times PH·PW.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import dilate, hand_written_op
from custom_layers.ops.shapes import crop_hw, pad_hw, padded_shape, pool_geometry


def _geometry(shape, pool_size, strides, padding):
    return pool_geometry(shape, pool_size, strides, padding, "avg_pool2d")


def window_counts(hw, pool_size, strides, pads) -> np.ndarray:
    """(HO, WO) number of input cells (not padding) in each window."""
    per_axis = []
    for size, k, s, (out, before, _) in zip(hw, pool_size, strides, pads):
        starts = np.arange(out) * s - before
        per_axis.append(np.minimum(starts + k, size) - np.maximum(starts, 0))
    return np.outer(per_axis[0], per_axis[1]).astype(np.float64)


# --------------------------------------------------------------------------- NumPy reference

def _window_cells(i, j, hw, pool_size, strides, pads):
    """The (row, column) input cells of window (i, j), padding left out."""
    top, left = pads[0].before, pads[1].before
    rows = range(i * strides[0] - top, i * strides[0] - top + pool_size[0])
    cols = range(j * strides[1] - left, j * strides[1] - left + pool_size[1])
    return [(r, q) for r in rows for q in cols if 0 <= r < hw[0] and 0 <= q < hw[1]]


def avg_pool2d_forward_naive(x, pool_size=2, strides=None, padding="valid"):
    """Average pooling, plain loops over the cells inside the input.

    Returns:
        out: (N, HO, WO, C). cache: for ``avg_pool2d_backward_naive``.
    """
    pool_size, strides, pads = _geometry(x.shape, pool_size, strides, padding)
    ho, wo = pads[0].out, pads[1].out
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            cells = _window_cells(i, j, x.shape[1:3], pool_size, strides, pads)
            for r, q in cells:
                out[:, i, j, :] += x[:, r, q, :]
            out[:, i, j, :] /= len(cells)
    return out, (x.shape, pool_size, strides, pads)


def avg_pool2d_backward_naive(dout, cache):
    """Each window's dy / count added to every input cell of the window; dx (N, H, W, C)."""
    shape, pool_size, strides, pads = cache
    dx = np.zeros(shape, dtype=dout.dtype)
    for i in range(pads[0].out):
        for j in range(pads[1].out):
            cells = _window_cells(i, j, shape[1:3], pool_size, strides, pads)
            for r, q in cells:
                dx[:, r, q, :] += dout[:, i, j, :] / len(cells)
    return dx


def avg_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Vectorised: one strided add per window offset, then divide by the counts."""
    pool_size, strides, pads = _geometry(x.shape, pool_size, strides, padding)
    ho, wo = pads[0].out, pads[1].out
    x_pad = pad_hw(x, pads)
    total = np.zeros((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    for a in range(pool_size[0]):
        for b in range(pool_size[1]):
            total += x_pad[:, a:a + ho * strides[0]:strides[0], b:b + wo * strides[1]:strides[1], :]
    counts = window_counts(x.shape[1:3], pool_size, strides, pads)
    return total / counts[None, :, :, None], (x.shape, pool_size, strides, pads)


def avg_pool2d_backward(dout, cache):
    """Vectorised backward: the scaled dy added back at every window offset."""
    shape, pool_size, strides, pads = cache
    ho, wo = pads[0].out, pads[1].out
    share = dout / window_counts(shape[1:3], pool_size, strides, pads)[None, :, :, None]
    dx_pad = np.zeros(padded_shape(shape, pads), dtype=dout.dtype)
    for a in range(pool_size[0]):
        for b in range(pool_size[1]):
            dx_pad[:, a:a + ho * strides[0]:strides[0], b:b + wo * strides[1]:strides[1], :] += share
    return crop_hw(dx_pad, pads, shape)


# --------------------------------------------------------------------------- TensorFlow ops

def avg_pool2d(x: tf.Tensor, pool_size=2, strides=None, padding: str = "valid") -> tf.Tensor:
    """Average pooling (N, H, W, C) -> (N, HO, WO, C) with a hand-written backward."""
    x = tf.convert_to_tensor(x)
    pool_size, strides, pads = _geometry(x.shape, pool_size, strides, padding)
    hw = tuple(x.shape[1:3])
    counts = window_counts(hw, pool_size, strides, pads)

    def forward(x):
        return tf.nn.avg_pool2d(x, pool_size, strides, padding.upper()), None

    def backward(dy, _):
        share = dy / tf.constant(counts[None, :, :, None], dy.dtype)
        dilated = dilate(share, strides)
        # Window (i) covers padded rows [i·S, i·S + K): a padded cell P gets the
        # dilated shares at P-K+1 .. P, i.e. a stride-1 window sum after K-1 zeros.
        # Zeros after, so that the sums cover every padded cell (rows past the last window get 0).
        extra = [hw[a] + pads[a].before + pads[a].after - (pads[a].out - 1) * strides[a] - 1
                 for a in range(2)]
        dilated = tf.pad(dilated, [[0, 0], [pool_size[0] - 1, extra[0]],
                                   [pool_size[1] - 1, extra[1]], [0, 0]])
        window_sums = tf.nn.avg_pool2d(dilated, pool_size, 1, "VALID") * float(np.prod(pool_size))
        top, left = pads[0].before, pads[1].before
        return (window_sums[:, top:top + hw[0], left:left + hw[1], :],)

    return hand_written_op(forward, backward, x)
