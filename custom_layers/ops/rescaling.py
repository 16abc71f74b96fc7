"""Rescaling by constants, y = x · scale + offset: NumPy reference and TF op.

    forward   y = x ⊙ scale + offset      (scale, offset broadcast against x)
    backward  dx = dy ⊙ scale, summed back to x's shape where the constants
              broadcast x to a larger one

Scale and offset are constants (``keras.layers.Rescaling``'s arguments), so
only x has a gradient.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _broadcast_axes(shape: Sequence[int], target: Sequence[int]) -> Tuple[Tuple[int, ...], int]:
    """The axes of ``target`` summed to get back ``shape``, and how many lead."""
    lead = len(target) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, (a, b) in
                                      enumerate(zip(shape, target[lead:])) if a == 1 and b != 1)
    return axes, lead


def rescale_forward(x: np.ndarray, scale, offset):
    """y = x · scale + offset. Returns out and the cache (x's shape, scale)."""
    return x * scale + offset, (x.shape, np.asarray(scale))


def rescale_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout · scale, summed over the axes the constants broadcast x along."""
    shape, scale = cache
    dx = dout * scale
    axes, lead = _broadcast_axes(shape, dx.shape)
    return dx.sum(axis=axes, keepdims=True).reshape(shape) if axes else dx


# ----------------------------------------------------------------------------
# TensorFlow op
# ----------------------------------------------------------------------------


def rescale(x: tf.Tensor, scale, offset=0.0) -> tf.Tensor:
    """x · scale + offset (constants in x's dtype) with a hand-written gradient.

    Args:
        x: any shape, floating.
        scale, offset: numbers or arrays broadcastable against x.

    Returns:
        x's shape, or the broadcast shape if the constants have more dimensions.
    """
    x = tf.convert_to_tensor(x)
    scale = tf.cast(scale, x.dtype)
    offset = tf.cast(offset, x.dtype)

    def forward(x):
        return x * scale + offset, None

    def backward(dy, _):
        dx = dy * scale
        if dx.shape.rank is None or x.shape.rank is None or dx.shape == x.shape:
            return (dx,)
        axes, _ = _broadcast_axes(x.shape.as_list(), dx.shape.as_list())
        return (tf.reshape(tf.reduce_sum(dx, axis=axes, keepdims=True), tf.shape(x)),)

    return hand_written_op(forward, backward, x)
