"""Rescaling by constants, y = x · scale + offset: NumPy reference and TF ops.

    forward   y = x ⊙ scale + offset      (scale, offset broadcast against x)
    backward  dx = dy ⊙ scale, summed back to x's shape where the constants
              broadcast x to a larger one

Scale and offset are constants (``keras.layers.Rescaling``'s arguments), so
only x has a gradient. ``standardize`` is the same map written as
``keras.layers.Normalization`` writes it, (x − μ) / d or μ + x·d with
d = max(√σ², ε) from the adapted mean and variance: dx = dy / d or dy · d.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import keras
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


def standardize_forward(x: np.ndarray, mean, variance, invert: bool = False,
                        epsilon: float = 1e-7):
    """(x − μ) / d, or μ + x · d when ``invert``. Returns out and ``rescale_backward``'s cache."""
    d = np.maximum(np.sqrt(variance), epsilon)
    out = mean + x * d if invert else (x - mean) / d
    return out, (x.shape, d if invert else 1 / d)


def rescale_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout · scale, summed over the axes the constants broadcast x along."""
    shape, scale = cache
    dx = dout * scale
    axes, lead = _broadcast_axes(shape, dx.shape)
    return dx.sum(axis=axes, keepdims=True).reshape(shape) if axes else dx


# ----------------------------------------------------------------------------
# TensorFlow op
# ----------------------------------------------------------------------------


def _summed_to(dx: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """dx summed back to x's shape over the axes the constants broadcast x along."""
    if dx.shape.rank is None or x.shape.rank is None or dx.shape == x.shape:
        return dx
    axes, _ = _broadcast_axes(x.shape.as_list(), dx.shape.as_list())
    return tf.reshape(tf.reduce_sum(dx, axis=axes, keepdims=True), tf.shape(x))


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
        return (_summed_to(dy * scale, x),)

    return hand_written_op(forward, backward, x)


def standardize(x: tf.Tensor, mean, variance, invert: bool = False,
                epsilon: float = 1e-7) -> tf.Tensor:
    """``keras.layers.Normalization``'s arithmetic (bit for bit) with dx = dy / d (dy · d
    when ``invert``), d = max(√variance, epsilon).

    Args:
        x: any shape, floating.
        mean, variance: constants broadcastable against x (the adapted statistics).
        invert: map standardised values back.
        epsilon: the floor of d (Keras's ``backend.epsilon()``).

    Returns:
        x's shape, or the broadcast shape.
    """
    x = tf.convert_to_tensor(x)
    mean, variance = tf.cast(mean, x.dtype), tf.cast(variance, x.dtype)
    # Keras's own ops, as the layer writes them, so the values are stock's bit for bit.
    d = keras.ops.maximum(keras.ops.sqrt(variance), epsilon)

    def forward(x):
        y = (keras.ops.add(mean, keras.ops.multiply(x, d)) if invert
             else keras.ops.divide(keras.ops.subtract(x, mean), d))
        return y, None

    def backward(dy, _):
        return (_summed_to(dy * d if invert else dy / d, x),)

    return hand_written_op(forward, backward, x)
