"""Softmax and log-softmax over any axes: the NumPy reference and the TF ops.

    softmax      y = e^z / Σ e^z          dz = y ⊙ (dy − Σ dy ⊙ y)
    log_softmax  y = z − log Σ e^z        dz = dy − e^y Σ dy

The sums run over ``axis`` (an int, a tuple of ints, or None for every
axis), as ``keras.activations.softmax`` / ``log_softmax`` and the
``keras.layers.Softmax`` layer take it. A mask (the Softmax layer's) sets
the masked logits to a large negative number before and the outputs to 0
after, as Keras does; their gradient is 0.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

Axis = Union[int, Sequence[int], None]


def _np_axis(axis: Axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def softmax_forward(z: np.ndarray, axis: Axis = -1):
    """Softmax over ``axis`` (max subtracted first). Returns out (like z) and the cache (out, axis)."""
    axis = _np_axis(axis)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis)


def softmax_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dz = y ⊙ (dout − Σ dout ⊙ y) over the softmax's axes."""
    y, axis = cache if isinstance(cache, tuple) else (cache, -1)
    return y * (dout - (dout * y).sum(axis=axis, keepdims=True))


def _rows(z: np.ndarray, axis: Axis):
    """z as (rows, values over ``axis``) and how to put such rows back (axis None: all)."""
    axes = tuple(range(z.ndim)) if axis is None else tuple(
        a % z.ndim for a in (axis if isinstance(axis, (list, tuple)) else [axis]))
    order = [i for i in range(z.ndim) if i not in axes] + list(axes)
    moved = np.transpose(z, order)
    size = int(np.prod([z.shape[a] for a in axes]))
    return moved.reshape(-1, size), lambda rows: np.transpose(rows.reshape(moved.shape),
                                                              np.argsort(order))


def softmax_forward_naive(z: np.ndarray, axis: Axis = -1, log: bool = False):
    """Softmax (or log-softmax) over ``axis`` by loops over each row (the test oracle):
    y_i = e^(z_i − m) / Σ_j e^(z_j − m), m the row's maximum. Returns out and the cache."""
    rows, back = _rows(z, axis)
    out, probs = np.empty_like(rows), np.empty_like(rows)
    for r in range(rows.shape[0]):
        m = max(rows[r])
        e = [np.exp(v - m) for v in rows[r]]
        total = sum(e)
        for i in range(rows.shape[1]):
            probs[r, i] = e[i] / total
            out[r, i] = rows[r, i] - m - np.log(total) if log else probs[r, i]
    return back(out), (probs, axis, log)


def softmax_backward_naive(dout: np.ndarray, cache) -> np.ndarray:
    """dz by the Jacobian, loops: softmax ∂y_j/∂z_i = y_j (δ_ij − y_i); log-softmax
    ∂y_j/∂z_i = δ_ij − p_i."""
    probs, axis, log = cache
    d_rows, back = _rows(dout, axis)
    dz = np.zeros_like(d_rows)
    for r in range(d_rows.shape[0]):
        p = probs[r]
        for i in range(len(p)):
            for j in range(len(p)):
                delta = 1.0 if i == j else 0.0
                jacobian = delta - p[i] if log else p[j] * (delta - p[i])
                dz[r, i] += d_rows[r, j] * jacobian
    return back(dz)


def log_softmax_forward(z: np.ndarray, axis: Axis = -1):
    """z − log Σ e^z over ``axis``. Returns out and the cache (out, axis)."""
    axis = _np_axis(axis)
    m = z.max(axis=axis, keepdims=True)
    y = z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))
    return y, (y, axis)


def log_softmax_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dz = dout − softmax(z) Σ dout, with softmax(z) = e^y."""
    y, axis = cache
    return dout - np.exp(y) * dout.sum(axis=axis, keepdims=True)


def _tf_axes(z: tf.Tensor, axis: Axis) -> Optional[list]:
    if axis is None:
        return None
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = z.shape.rank
    for a in axes:
        if not isinstance(a, (int, np.integer)) or rank is not None and not -rank <= a < rank:
            raise ValueError(f"softmax axis {a!r} is not an axis of an input of rank {rank}")
    return axes


def softmax(z: tf.Tensor, axis: Axis = -1, mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Softmax over ``axis`` with a hand-written gradient: dz = y ⊙ (dy − Σ dy ⊙ y).

    Args:
        z: logits, any shape.
        axis: an int, a tuple of ints, or None (every axis).
        mask: optional, broadcastable to z; True (or > 0.5) keeps a logit.
            Masked logits count as -1e9 (-3e4 in float16), masked outputs are 0.

    Returns:
        y, shaped like z. In a graph it carries its logits as ``_keras_logits``,
        as Keras's own softmax does, so cross-entropy losses can start from them.
    """
    z = tf.convert_to_tensor(z)
    axes = _tf_axes(z, axis)
    if mask is not None:
        mask = tf.convert_to_tensor(mask)
        if mask.dtype != tf.bool:
            mask = mask > tf.cast(0.5, mask.dtype)

    def forward(z):
        if mask is not None:
            z = tf.where(mask, z, tf.constant(-3e4 if z.dtype == tf.float16 else -1e9, z.dtype))
        if axes is not None and len(axes) > 1:
            # Keras's expression for several axes, so the values are stock's.
            y = tf.exp(z - tf.reduce_logsumexp(z, axis=axes, keepdims=True))
        else:
            y = keras.activations.softmax(z, axis=None if axes is None else axes[0])
        if mask is not None:
            y = tf.where(mask, y, tf.zeros([], y.dtype))
        return y, y

    def backward(dy, y):
        # Masked outputs are 0, so their logits' gradient is 0 as well.
        return (y * (dy - tf.reduce_sum(dy * y, axis=axes, keepdims=True)),)

    y = hand_written_op(forward, backward, z)
    try:
        y._keras_logits = z
    except AttributeError:  # eager tensors take no attributes (nor does Keras's softmax)
        pass
    return y


def log_softmax(z: tf.Tensor, axis: Axis = -1) -> tf.Tensor:
    """``keras.activations.log_softmax`` with a hand-written gradient: dz = dy − e^y Σ dy.

    Args:
        z: logits, any shape.
        axis: an int or None (every axis), as Keras's.

    Returns:
        y, shaped like z.
    """
    z = tf.convert_to_tensor(z)
    axes = _tf_axes(z, axis)
    if axes is not None and len(axes) != 1:
        raise ValueError(f"log_softmax takes one axis or None. Received: axis={axis!r}")

    def forward(z):
        y = keras.activations.log_softmax(z, axis=None if axes is None else axes[0])
        return y, y

    def backward(dy, y):
        return (dy - tf.exp(y) * tf.reduce_sum(dy, axis=axes, keepdims=True),)

    return hand_written_op(forward, backward, z)
