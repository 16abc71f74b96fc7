"""Global average and max pooling: the NumPy reference and the TF ops.

Global pooling reduces H and W (or any ``axes``), keeping the dims: the
average's gradient is dy / (H·W) at every cell; the maximum's goes to the
cells equal to the maximum, split evenly among ties (as TensorFlow's
gradient of ``reduce_max``, which stock Keras uses). ``masked_mean`` averages
the unmasked cells only (Keras's masked GlobalAveragePooling1D).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

# --------------------------------------------------------------------------- NumPy reference

def global_pool_forward(x, kind: str, axes=(1, 2)):
    """Mean or max over ``axes`` (keepdims); returns out and the cache."""
    out = x.mean(axis=axes, keepdims=True) if kind == "avg" else x.max(axis=axes, keepdims=True)
    return out, (x, out, kind, axes)


def global_pool_backward(dout, cache):
    """dout has the kept dims; dx like x (ties of the maximum share its gradient)."""
    x, out, kind, axes = cache
    if kind == "avg":
        cells = np.prod([x.shape[a] for a in axes])
        return np.broadcast_to(dout / cells, x.shape).copy()
    winners = (x == out).astype(x.dtype)
    return winners * dout / winners.sum(axis=axes, keepdims=True)


# --------------------------------------------------------------------------- TensorFlow ops

def global_avg_pool(x: tf.Tensor, axes=(1, 2)) -> tf.Tensor:
    """Mean over ``axes`` with keepdims; dx = dy / cells at every cell."""
    def forward(x):
        shape = tf.shape(x)
        cells = tf.cast(tf.reduce_prod(tf.gather(shape, list(axes))), x.dtype)
        return tf.reduce_mean(x, axes, keepdims=True), (shape, cells)

    def backward(dy, saved):
        shape, cells = saved
        return (tf.broadcast_to(dy / cells, shape),)

    return hand_written_op(forward, backward, x)


def global_max_pool(x: tf.Tensor, axes=(1, 2)) -> tf.Tensor:
    """Maximum over ``axes`` with keepdims; dy split evenly among the tied maxima."""
    def forward(x):
        y = tf.reduce_max(x, axes, keepdims=True)
        return y, (x, y)

    def backward(dy, saved):
        x, y = saved
        winners = tf.cast(tf.equal(x, y), dy.dtype)
        return (winners * dy / tf.reduce_sum(winners, axes, keepdims=True),)

    return hand_written_op(forward, backward, x)


def masked_mean(x: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Mean over ``axis`` of the cells where ``mask`` (bool, broadcastable to x) is True,
    keepdims, as Keras's masked GlobalAveragePooling1D computes it; dx = dy / count
    at the kept cells, 0 elsewhere."""
    def forward(x):
        kept = tf.cast(mask, x.dtype)
        count = tf.reduce_sum(kept, axis, keepdims=True)
        total = tf.reduce_sum(tf.where(mask, x, tf.zeros([], x.dtype)), axis, keepdims=True)
        return total / count, (kept, count)

    def backward(dy, saved):
        kept, count = saved
        return (kept * (dy / count),)

    return hand_written_op(forward, backward, tf.convert_to_tensor(x))
