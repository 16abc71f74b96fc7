"""The gated linear unit: the NumPy reference and the TF op.

x splits in halves a, b along ``axis``; y = a ⊙ σ(b), and with s = σ(b)

    da = dy ⊙ s,   db = dy ⊙ a ⊙ s (1 − s),   dx = [da, db] along the axis.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op


def glu_forward(x: np.ndarray, axis: int = -1):
    """x (..., 2·D, ...) -> (y (..., D, ...), cache)."""
    a, b = np.split(x, 2, axis=axis)
    s = 1 / (1 + np.exp(-b))
    return a * s, (a, s, axis)


def glu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dout like y -> dx like x."""
    a, s, axis = cache
    return np.concatenate([dout * s, dout * a * s * (1 - s)], axis=axis)


def glu(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """``keras.activations.glu`` (its forward, bit for bit) with the gradient above.

    Args:
        x: any shape, its size on ``axis`` known and even.
        axis: the axis split in halves.

    Returns:
        y: x's shape with that axis halved.
    """
    x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    if not isinstance(axis, (int, np.integer)) or not -rank <= axis < rank:
        raise ValueError(f"glu axis {axis!r} is not an axis of an input of rank {rank}")
    if x.shape[axis] is None or x.shape[axis] % 2:
        raise ValueError(f"glu splits axis {axis} in halves: its size must be known and even. "
                         f"Received: x.shape={x.shape}")

    def forward(x):
        return keras.activations.glu(x, axis=axis), x

    def backward(dy, x):
        a, b = tf.split(x, 2, axis=axis)
        s = tf.sigmoid(b)
        return (tf.concat([dy * s, dy * a * s * (1 - s)], axis=axis),)

    return hand_written_op(forward, backward, x)
