"""The arithmetic of Keras's merge layers, pair by pair: NumPy reference and TF ops.

    add       y = a + b          da = dy,            db = dy
    subtract  y = a − b          da = dy,            db = −dy
    multiply  y = a b            da = dy b,          db = dy a
    maximum   y = max(a, b)      da = dy [a ≥ b],    db = dy [a < b]
    minimum   y = min(a, b)      da = dy [a ≤ b],    db = dy [a > b]
    select    y = m ? a : b      da = dy [m],        db = dy [¬m]   (m a mask, not differentiated)
    divide    y = a / n          da = dy / n                         (n a Python number)
    concatenate  y = [x₁ … xₖ] along an axis    dxᵢ = dy's slice of xᵢ

Inputs may broadcast against each other (as Keras's merge layers allow); a
gradient is summed back over the axes its input was broadcast on. Ties go to
the first input, as TensorFlow's Maximum/Minimum gradients take them, so
Keras's layers, which chain these pairs, get stock's gradients exactly.
"""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op


def unbroadcast_numpy(g: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """``g`` summed down to ``shape`` (leading axes, and axes where shape has 1)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


# NumPy reference: (forward, backward) per pair op, backward(dy, a, b) -> (da, db).
PAIRS = {
    "add": (np.add, lambda dy, a, b: (dy, dy)),
    "subtract": (np.subtract, lambda dy, a, b: (dy, -dy)),
    "multiply": (np.multiply, lambda dy, a, b: (dy * b, dy * a)),
    "maximum": (np.maximum, lambda dy, a, b: (dy * (a >= b), dy * (a < b))),
    "minimum": (np.minimum, lambda dy, a, b: (dy * (a <= b), dy * (a > b))),
}


def pair_forward(name: str, a: np.ndarray, b: np.ndarray):
    """The reference forward of pair op ``name``. Returns out and the cache (a, b)."""
    return PAIRS[name][0](a, b), (a, b)


def pair_backward(name: str, dout: np.ndarray, cache) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (da, db), each summed to its input's shape."""
    a, b = cache
    da, db = PAIRS[name][1](np.broadcast_to(dout, np.broadcast(a, b).shape), a, b)
    return unbroadcast_numpy(da, a.shape), unbroadcast_numpy(db, b.shape)


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


def unbroadcast(g: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``g`` summed down to x's shape, from the static shapes (an unknown size
    counts as unbroadcast, as Keras's merge layers require of the batch)."""
    extra = g.shape.rank - x.shape.rank
    if extra > 0:
        g = tf.reduce_sum(g, axis=list(range(extra)))
    axes = [i for i, (s, t) in enumerate(zip(x.shape, g.shape)) if s == 1 and t != 1]
    return tf.reduce_sum(g, axis=axes, keepdims=True) if axes else g


def _zero(dy: tf.Tensor) -> tf.Tensor:
    return tf.zeros([], dy.dtype)


_TF_PAIRS: dict = {
    "add": (tf.add, lambda dy, a, b: (dy, dy)),
    "subtract": (tf.subtract, lambda dy, a, b: (dy, -dy)),
    "multiply": (tf.multiply, lambda dy, a, b: (dy * b, a * dy)),
    "maximum": (tf.maximum, lambda dy, a, b: (tf.where(a >= b, dy, _zero(dy)),
                                              tf.where(a >= b, _zero(dy), dy))),
    "minimum": (tf.minimum, lambda dy, a, b: (tf.where(a <= b, dy, _zero(dy)),
                                              tf.where(a <= b, _zero(dy), dy))),
}


def _pair(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    value, grads = _TF_PAIRS[name]

    def op(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)

        def forward(a, b):
            return value(a, b), (a, b)

        def backward(dy, saved):
            a, b = saved
            da, db = grads(dy, a, b)
            return unbroadcast(da, a), unbroadcast(db, b)

        return hand_written_op(forward, backward, a, b)

    op.__name__ = name
    op.__doc__ = f"``tf.{name}(a, b)`` with the hand-written gradient of the module doc."
    return op


add = _pair("add")
subtract = _pair("subtract")
multiply = _pair("multiply")
maximum = _pair("maximum")
minimum = _pair("minimum")


def select(mask: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``tf.where(mask, a, b)`` (broadcasting) with a hand-written gradient."""
    mask = tf.convert_to_tensor(mask)

    def forward(a, b):
        return tf.where(mask, a, b), (a, b)

    def backward(dy, saved):
        a, b = saved
        dy = tf.broadcast_to(dy, tf.shape(tf.where(mask, a, b)))
        return (unbroadcast(tf.where(mask, dy, _zero(dy)), a),
                unbroadcast(tf.where(mask, _zero(dy), dy), b))

    return hand_written_op(forward, backward, tf.convert_to_tensor(a), tf.convert_to_tensor(b))


def divide(a: tf.Tensor, n: float) -> tf.Tensor:
    """``a / n`` for a Python number n (Keras's Average), with da = dy / n."""
    def forward(a):
        return a / n, None

    def backward(dy, _):
        return (dy / n,)

    return hand_written_op(forward, backward, tf.convert_to_tensor(a))


def concatenate(xs: Sequence[tf.Tensor], axis: int = -1) -> tf.Tensor:
    """``tf.concat(xs, axis)`` whose gradient slices dy back into the inputs' parts.

    Args:
        xs: tensors of one rank, equal but for ``axis``, whose sizes must be
            known when traced.
        axis: the axis to join along.
    """
    xs = [tf.convert_to_tensor(x) for x in xs]
    rank = xs[0].shape.rank
    sizes: List[int] = [x.shape[axis] for x in xs]
    if None in sizes:
        raise ValueError(f"concatenate needs the sizes on axis {axis} known when traced. "
                         f"Received shapes {[tuple(x.shape) for x in xs]}")

    def forward(*xs):
        return tf.concat(xs, axis), None

    def backward(dy, _):
        return tf.split(dy, sizes, axis=axis % rank)

    return hand_written_op(forward, backward, *xs)
