"""Unfolding one axis into its window taps, and folding back: each the other's backward.

    unfold  y[..., o, ..., k, c] = x_pad[..., o·S + k·D, ..., c]      (a new tap axis
            before the channels; x padded on ``axis`` with ``value``)
    fold    the adjoint: y[..., p, ..., c] = Σ_{o·S + k·D = p + before} x[..., o, ..., k, c]

This is how an N-d convolution or pooling is built from the (N-1)-d one: the
taps of the first spatial axis move next to the channels (and that axis into
the batch), so a 3-D convolution is one 2-D convolution of KD·C channels and
its transposed form the 2-D transposed convolution folded back (see
``volumetric_convolution``). Shapes: x (..., L, ..., C) with L at ``axis``
(an axis between the batch and the channels); y (..., LO, ..., K, C), LO the
window count of ``shapes.axis_padding`` with the given (before, after) padding.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op
from custom_layers.ops.shapes import window_span


def _geometry(rank: int, length: int, axis: int, window: int, stride: int, dilation: int,
              pads: Sequence[int], what: str) -> Tuple[Tuple[int, int], int]:
    """((before, after), window count) of an unfolding, checked."""
    before, after = (int(v) for v in pads)
    if not 0 < axis < rank - 1:
        raise ValueError(f"{what} unfolds an axis between the batch and the channels of a "
                         f"rank-{rank} input. Received: axis={axis}")
    if min(window, stride, dilation) < 1 or min(before, after) < 0:
        raise ValueError(f"{what} needs a positive window, stride and dilation and "
                         f"non-negative padding. Received: window={window}, stride={stride}, "
                         f"dilation={dilation}, pads={(before, after)}")
    if length is None:
        raise ValueError(f"{what} needs the length of axis {axis} known when traced")
    span = window_span(window, dilation)
    if length + before + after < span:
        raise ValueError(f"{what}: a window of span {span} does not fit in a length of "
                         f"{length} padded by {(before, after)}")
    return (before, after), (length + before + after - span) // stride + 1


def _along(axis: int, index) -> tuple:
    return (slice(None),) * axis + (index,)


# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def unfold_forward(x: np.ndarray, axis: int, window: int, stride: int = 1, dilation: int = 1,
                   pads: Sequence[int] = (0, 0), value: float = 0.0):
    """The taps of every window along ``axis``, as a new axis before the channels.

    Args:
        x: (..., L, ..., C), L at ``axis``.
        window, stride, dilation: the window's taps, its step, the taps' spacing.
        pads: (before, after) cells of ``value`` added to ``axis`` first.

    Returns:
        out: (..., LO, ..., K, C), ``out[..., o, ..., k, c] = x_pad[..., o*S + k*D, ..., c]``.
        cache: what ``unfold_backward`` needs.
    """
    pads, out_len = _geometry(x.ndim, x.shape[axis], axis, window, stride, dilation, pads,
                              "unfold")
    widths = [(0, 0)] * x.ndim
    widths[axis] = pads
    x_pad = np.pad(x, widths, constant_values=value)
    taps = [x_pad[_along(axis, slice(k * dilation, k * dilation + (out_len - 1) * stride + 1,
                                     stride))] for k in range(window)]
    return np.stack(taps, axis=-2), (x.shape, axis, stride, dilation, pads)


def unfold_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx: each tap's gradient added back where it was read (the fold); (..., L, ..., C)."""
    shape, axis, stride, dilation, (before, after) = cache
    padded = list(shape)
    padded[axis] = shape[axis] + before + after
    dx_pad = np.zeros(padded, dtype=dout.dtype)
    out_len = dout.shape[axis]
    for k in range(dout.shape[-2]):
        start = k * dilation
        dx_pad[_along(axis, slice(start, start + (out_len - 1) * stride + 1, stride))] += \
            dout[..., k, :]
    return dx_pad[_along(axis, slice(before, before + shape[axis]))]


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


def _unfold_tf(x: tf.Tensor, axis: int, window: int, stride: int, dilation: int,
               pads: Tuple[int, int], out_len: int, value: float = 0.0) -> tf.Tensor:
    if max(pads) > 0:
        widths = [[0, 0]] * x.shape.rank
        widths[axis] = list(pads)
        x = tf.pad(x, widths, constant_values=value)
    taps = [x[_along(axis, slice(k * dilation, k * dilation + (out_len - 1) * stride + 1,
                                 stride))] for k in range(window)]
    return tf.stack(taps, axis=-2)


def _spread(t: tf.Tensor, axis: int, stride: int) -> tf.Tensor:
    """``stride - 1`` zeros between the entries of ``axis``: length (L - 1)·S + 1."""
    if stride == 1:
        return t
    length = t.shape[axis]
    t = tf.expand_dims(t, axis + 1)
    widths = [[0, 0]] * t.shape.rank
    widths[axis + 1] = [0, stride - 1]
    t = tf.pad(t, widths)
    dims = tf.unstack(tf.shape(t))
    t = tf.reshape(t, tf.stack([*dims[:axis], length * stride, *dims[axis + 2:]]))
    return t[_along(axis, slice(0, (length - 1) * stride + 1))]


def _fold_tf(t: tf.Tensor, axis: int, length: int, stride: int, dilation: int,
             pads: Tuple[int, int]) -> tf.Tensor:
    out_len, window = t.shape[axis], t.shape[-2]
    before, after = pads
    padded = length + before + after
    parts = []
    for k in range(window):
        part = _spread(t[..., k, :], axis, stride)
        widths = [[0, 0]] * part.shape.rank
        start = k * dilation
        widths[axis] = [start, padded - start - ((out_len - 1) * stride + 1)]
        parts.append(tf.pad(part, widths))
    total = parts[0] if window == 1 else tf.add_n(parts)
    return total[_along(axis, slice(before, before + length))]


def unfold(x: tf.Tensor, axis: int, window: int, stride: int = 1, dilation: int = 1,
           pads: Sequence[int] = (0, 0), value: float = 0.0) -> tf.Tensor:
    """The taps of every window along ``axis`` (``unfold_forward``), whose gradient
    folds dy back (``fold``).

    Args:
        x: (..., L, ..., C), L known at ``axis``.
        pads: (before, after) cells of ``value`` (0 for convolutions, -inf for
            max pooling): padding gets no gradient.

    Returns:
        (..., LO, ..., K, C).
    """
    x = tf.convert_to_tensor(x)
    pads, out_len = _geometry(x.shape.rank, x.shape[axis], axis, window, stride, dilation,
                              pads, "unfold")
    length = x.shape[axis]

    def forward(x):
        return _unfold_tf(x, axis, window, stride, dilation, pads, out_len, value), None

    def backward(dy, _):
        return (_fold_tf(dy, axis, length, stride, dilation, pads),)

    return hand_written_op(forward, backward, x)


def fold(t: tf.Tensor, axis: int, length: int, stride: int = 1, dilation: int = 1,
         pads: Sequence[int] = (0, 0)) -> tf.Tensor:
    """The adjoint of ``unfold``: each tap added where ``unfold`` read it, then the
    padding cropped; its gradient unfolds dy (zero padding).

    Args:
        t: (..., LO, ..., K, C), LO at ``axis`` and the K taps known.
        length: L, the folded axis's length; ``unfold`` of an (..., L, ..., C)
            input with these arguments must give LO windows.

    Returns:
        (..., L, ..., C).
    """
    t = tf.convert_to_tensor(t)
    window = t.shape[-2]
    rank = t.shape.rank - 1
    pads, out_len = _geometry(rank, length, axis, window, stride, dilation, pads, "fold")
    if t.shape[axis] != out_len:
        raise ValueError(f"fold: a length of {length} padded by {pads} holds {out_len} "
                         f"windows, not the input's {t.shape[axis]}")

    def forward(t):
        return _fold_tf(t, axis, length, stride, dilation, pads), None

    def backward(dy, _):
        return (_unfold_tf(dy, axis, window, stride, dilation, pads, out_len),)

    return hand_written_op(forward, backward, t)
