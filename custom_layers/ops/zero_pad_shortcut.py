"""The option-A residual shortcut (He et al. 2016): subsample, then zero-pad the channels.

    forward   y = pad(x[:, ::S, ::S, :], channels C -> F with zeros)
    backward  dx = dy[..., :C] put back at the sampled positions, 0 elsewhere

Both directions are slicing and padding only; the backward is written out
so that TensorFlow derives no gradient of a model that uses it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import dilate, hand_written_op

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _check(channels: int, filters: int, stride: int) -> None:
    if not isinstance(stride, int) or stride <= 0:
        raise ValueError(f"stride must be a positive integer. Received: stride={stride!r}")
    if not isinstance(filters, int) or filters < channels:
        raise ValueError(f"filters must be an integer >= the input's {channels} channels. "
                         f"Received: filters={filters!r}")


def zero_pad_shortcut_forward(x: np.ndarray, filters: int, stride: int):
    """x (N, H, W, C) -> out (N, ceil(H/S), ceil(W/S), F) and the cache (x's shape, S)."""
    _check(x.shape[-1], filters, stride)
    sampled = x[:, ::stride, ::stride, :]
    out = np.zeros(sampled.shape[:3] + (filters,), x.dtype)
    out[..., :x.shape[-1]] = sampled
    return out, (x.shape, stride)


def zero_pad_shortcut_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx (N, H, W, C): dout's first C channels at the sampled positions."""
    shape, stride = cache
    dx = np.zeros(shape, dout.dtype)
    dx[:, ::stride, ::stride, :] = dout[..., :shape[-1]]
    return dx


# ----------------------------------------------------------------------------
# TensorFlow op
# ----------------------------------------------------------------------------


def zero_pad_shortcut(x: tf.Tensor, filters: int, stride: int) -> tf.Tensor:
    """The shortcut of (N, H, W, C) x, with a hand-written gradient.

    Returns:
        (N, ceil(H / stride), ceil(W / stride), filters).
    """
    x = tf.convert_to_tensor(x)
    channels, h, w = x.shape[-1], x.shape[1], x.shape[2]
    _check(channels, filters, stride)
    if stride > 1 and None in (h, w):
        raise ValueError(f"zero_pad_shortcut needs the input's height and width known "
                         f"when traced. Received: shape {x.shape}")

    def forward(x):
        y = x[:, ::stride, ::stride, :]
        return (tf.pad(y, [[0, 0], [0, 0], [0, 0], [0, filters - channels]])
                if filters > channels else y), None

    def backward(dy, _):
        dx = dilate(dy[..., :channels], (stride, stride))
        if stride > 1:  # dilate ends at the last sampled row/column: pad up to H, W
            dx = tf.pad(dx, [[0, 0], [0, h - dx.shape[1]], [0, w - dx.shape[2]], [0, 0]])
        return (dx,)

    return hand_written_op(forward, backward, x)
