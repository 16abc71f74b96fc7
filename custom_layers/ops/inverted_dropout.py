"""Inverted dropout: the NumPy reference and the TF op; the backward reuses the forward's mask.

    forward   y = x * keep / (1 - rate)        keep[i] = u[i] >= rate, u ~ U[0, 1)
    backward  dx = dy * keep / (1 - rate)

``keep`` may have fewer dimensions' worth of entries than x (a noise shape
with 1s broadcasts one decision over an axis).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op


def dropout_forward(x: np.ndarray, keep: np.ndarray, rate: float):
    """x any shape, keep a boolean array broadcastable to it; returns out, cache."""
    scale = 1.0 / (1.0 - rate)
    return np.where(keep, x * scale, 0.0).astype(x.dtype), (keep, scale)


def dropout_backward(dout: np.ndarray, cache) -> np.ndarray:
    keep, scale = cache
    return np.where(keep, dout * scale, 0.0).astype(dout.dtype)


def dropout(x: tf.Tensor, keep: tf.Tensor, rate: float) -> tf.Tensor:
    """``where(keep, x / (1 - rate), 0)`` with the hand-written backward (same mask, same scale)."""
    scale = 1.0 / (1.0 - rate)

    def forward(x):
        return tf.where(keep, x * tf.constant(scale, x.dtype), tf.zeros([], x.dtype)), None

    def backward(dy, _):
        return (tf.where(keep, dy * tf.constant(scale, dy.dtype), tf.zeros([], dy.dtype)),)

    return hand_written_op(forward, backward, x)
