"""Parametric ReLU: the NumPy reference and the TF op with a hand-written gradient.

    y = x for x > 0, α x below        dx = dy (x > 0 ? 1 : x < 0 ? α : 0)
                                      dα = Σ dy · min(x, 0)  over the axes α is broadcast on

α has the input's shape without the batch axis, with 1 on the axes it is
shared over (``keras.layers.PReLU``'s ``shared_axes``). At x = 0 the gradient
is 0, as TensorFlow's autodiff of Keras's relu(x) − α relu(−x) gives.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import accumulation_dtype, hand_written_op


def _broadcast_axes(x_shape, alpha_shape) -> Tuple[int, ...]:
    """The axes of x that α (shaped like x without its batch axis) is broadcast over."""
    if len(alpha_shape) != len(x_shape) - 1:
        raise ValueError(f"PReLU alpha must have the input's rank minus one. Received: "
                         f"inputs shape {tuple(x_shape)}, alpha shape {tuple(alpha_shape)}")
    for a, d in zip(alpha_shape, x_shape[1:]):
        if a != 1 and d is not None and a != d:
            raise ValueError(f"PReLU alpha shape {tuple(alpha_shape)} does not broadcast "
                             f"to inputs shape {tuple(x_shape)}")
    return (0,) + tuple(i + 1 for i, a in enumerate(alpha_shape) if a == 1)


def prelu_forward(x: np.ndarray, alpha: np.ndarray):
    """x: (N, ...); alpha: x's shape without N, 1 on shared axes. Returns out and the cache."""
    _broadcast_axes(x.shape, alpha.shape)
    return np.where(x > 0, x, alpha * x), (x, alpha)


def prelu_backward(dout: np.ndarray, cache):
    """Returns (dx like x, dalpha like alpha)."""
    x, alpha = cache
    dx = dout * np.where(x > 0, 1, np.where(x < 0, alpha, 0))
    axes = _broadcast_axes(x.shape, alpha.shape)
    dalpha = (dout * np.minimum(x, 0)).sum(axis=axes, keepdims=True)[0]
    return dx, dalpha


def prelu(x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """``keras.layers.PReLU``'s relu(x) − α relu(−x) with a hand-written gradient.

    Args:
        x: (N, ...), a floating dtype.
        alpha: x's static shape without N, with 1 on shared axes; cast to x's
            dtype in the forward, its gradient summed in float32 for
            float16/bfloat16 inputs and returned in alpha's dtype.

    Returns:
        y, shaped like x.
    """
    x, alpha = tf.convert_to_tensor(x), tf.convert_to_tensor(alpha)
    axes = list(_broadcast_axes(x.shape.as_list(), alpha.shape.as_list()))

    def forward(x, alpha):
        a = tf.cast(alpha, x.dtype)
        # Keras's expression, so the values are stock's bit for bit.
        return tf.nn.relu(x) + -a * tf.nn.relu(-x), (x, a)

    def backward(dy, saved):
        x, a = saved
        zero = tf.zeros([], dy.dtype)
        dx = tf.where(x > 0, dy, tf.where(x < 0, a * dy, zero))
        acc = accumulation_dtype(dy.dtype)
        neg = tf.cast(tf.minimum(x, zero), acc)
        dalpha = tf.reduce_sum(tf.cast(dy, acc) * neg, axis=axes, keepdims=True)[0]
        return dx, tf.cast(dalpha, alpha.dtype)

    return hand_written_op(forward, backward, x, alpha)
