"""Group normalisation: the NumPy reference and the TF op with a closed-form backward.

The channel axis (C channels) is split into G groups of C/G; each example's
group is normalised over its channels and every other non-batch axis (M
values), with μ, σ² their mean and variance and r = 1 / √(σ² + ε):

    x̂ = (x − μ) r,   y = γ x̂ + β           (γ, β per channel)
    dβ = Σ dy,  dγ = Σ dy ⊙ x̂               (sums over batch and space)
    dx = r (g − mean(g) − x̂ mean(g ⊙ x̂)),   g = γ dy   (means over the group)

Layer normalisation's closed form (``layer_normalization``) on the grouped
view. Statistics and gradients are computed in float32 at least, as Keras
does; dx comes back in x's dtype.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op
from custom_layers.ops.layer_normalization import (normalize_row_backward_naive,
                                                   normalize_row_naive, normalized_input_grad)


def _check(shape, groups: int, axis: int) -> int:
    """The channel axis as a positive int; refuses what Keras's layer refuses."""
    rank = len(shape)
    if not isinstance(axis, (int, np.integer)) or not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(f"group normalization axis {axis!r} is not a non-batch axis of an "
                         f"input of rank {rank}")
    axis = int(axis) % rank
    channels = shape[axis]
    if channels is None:
        raise ValueError(f"group normalization needs axis {axis} known. Received shape {shape}")
    if not isinstance(groups, (int, np.integer)) or not 0 < groups <= channels \
            or channels % groups:
        raise ValueError(f"group normalization: groups={groups!r} must divide the {channels} "
                         f"channels on axis {axis}")
    return axis


def _grouped(shape, groups: int, axis: int) -> Tuple[List[int], List[int], List[int]]:
    """(the grouped view's shape, its reduction axes, γ's broadcast shape there)."""
    grouped = list(shape)
    grouped[axis: axis + 1] = [groups, shape[axis] // groups]
    reduce = [i for i in range(1, len(grouped)) if i != axis]
    broadcast = [1] * len(grouped)
    broadcast[axis: axis + 2] = [groups, shape[axis] // groups]
    return grouped, reduce, broadcast


def group_norm_forward(x: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray],
                       groups: int, axis: int = -1, epsilon: float = 1e-3):
    """x: (N, ..., C, ...); gamma, beta: (C,) or None. Returns out (like x) and the cache."""
    axis = _check(x.shape, groups, axis)
    grouped, reduce, broadcast = _grouped(x.shape, groups, axis)
    xg = x.reshape(grouped)
    mean = xg.mean(axis=tuple(reduce), keepdims=True)
    r = 1 / np.sqrt(((xg - mean) ** 2).mean(axis=tuple(reduce), keepdims=True) + epsilon)
    xhat = (xg - mean) * r
    out = xhat * (1 if gamma is None else gamma.reshape(broadcast))
    out = out + (0 if beta is None else beta.reshape(broadcast))
    return out.reshape(x.shape), (x, gamma, beta, groups, axis, xhat, r)


def group_norm_backward(dout: np.ndarray, cache):
    """Returns dx (like x), dgamma, dbeta ((C,), None where absent)."""
    x, gamma, beta, groups, axis, xhat, r = cache
    grouped, reduce, broadcast = _grouped(x.shape, groups, axis)
    dy = dout.reshape(grouped)
    g = dy * (1 if gamma is None else gamma.reshape(broadcast))
    dx = r * (g - g.mean(axis=tuple(reduce), keepdims=True)
              - xhat * (g * xhat).mean(axis=tuple(reduce), keepdims=True))
    others = tuple(i for i in range(len(grouped)) if i not in (axis, axis + 1))
    dgamma = (dy * xhat).sum(axis=others).reshape(-1)
    dbeta = dy.sum(axis=others).reshape(-1)
    return dx.reshape(x.shape), None if gamma is None else dgamma, None if beta is None else dbeta


def _group_rows(x: np.ndarray, groups: int, axis: int):
    """x as (N, G, values of the group): the group's channels last, then flattened."""
    moved = np.moveaxis(x, axis, -1)
    per_group = moved.reshape(moved.shape[0], -1, groups, moved.shape[-1] // groups)
    return np.transpose(per_group, (0, 2, 1, 3)), moved.shape


def group_norm_forward_naive(x: np.ndarray, gamma: Optional[np.ndarray],
                             beta: Optional[np.ndarray], groups: int, axis: int = -1,
                             epsilon: float = 1e-3):
    """``group_norm_forward`` by loops over each example's groups (the test oracle),
    with layer norm's row statistics. Returns out and the backward's cache."""
    axis = _check(x.shape, groups, axis)
    blocks, moved_shape = _group_rows(x, groups, axis)  # (N, G, cells, C / G)
    channels = moved_shape[-1]
    g = np.ones(channels) if gamma is None else gamma
    b = np.zeros(channels) if beta is None else beta
    out, stats = np.empty_like(blocks), {}
    per = channels // groups
    for n in range(blocks.shape[0]):
        for k in range(groups):
            centred, r = normalize_row_naive(blocks[n, k].reshape(-1), epsilon)
            stats[n, k] = (centred, r)
            for i, (cell, j) in enumerate(np.ndindex(*blocks.shape[2:])):
                c = k * per + j
                out[n, k, cell, j] = centred[i] * r * g[c] + b[c]
    return _ungroup(out, moved_shape, axis), (blocks.shape, stats, g, gamma, beta, groups,
                                              axis, moved_shape)


def group_norm_backward_naive(dout: np.ndarray, cache):
    """Loop form of ``group_norm_backward``: back through each group's row steps."""
    shape, stats, g, gamma, beta, groups, axis, moved_shape = cache
    d_blocks, _ = _group_rows(dout, groups, axis)
    dx = np.empty(shape)
    dgamma, dbeta = np.zeros(len(g)), np.zeros(len(g))
    per = len(g) // groups
    for (n, k), (centred, r) in stats.items():
        d_scaled = np.empty(len(centred))
        for i, (cell, j) in enumerate(np.ndindex(*shape[2:])):
            c = k * per + j
            dgamma[c] += d_blocks[n, k, cell, j] * centred[i] * r
            dbeta[c] += d_blocks[n, k, cell, j]
            d_scaled[i] = d_blocks[n, k, cell, j] * g[c]
        dx[n, k] = normalize_row_backward_naive(d_scaled, 0.0, centred, r).reshape(shape[2:])
    return (_ungroup(dx, moved_shape, axis), None if gamma is None else dgamma,
            None if beta is None else dbeta)


def _ungroup(blocks: np.ndarray, moved_shape, axis: int) -> np.ndarray:
    """Undoes ``_group_rows``."""
    moved = np.transpose(blocks, (0, 2, 1, 3)).reshape(moved_shape)
    return np.moveaxis(moved, -1, axis)


def group_norm(x: tf.Tensor, gamma: Optional[tf.Tensor], beta: Optional[tf.Tensor],
               groups: int, axis: int = -1, epsilon: float = 1e-3) -> tf.Tensor:
    """``keras.layers.GroupNormalization``'s arithmetic with the closed-form backward.

    Args:
        x: (N, ..., C, ...), the channel axis known; other non-batch axes may be unknown.
        gamma, beta: (C,) or None.
        groups: divides C.
        axis: the channel axis (not the batch axis).
        epsilon: added to the variance.

    Returns:
        y, shaped like x, in x's dtype (computed in float32 at least).
    """
    x = tf.convert_to_tensor(x)
    axis = _check(x.shape.as_list(), groups, axis)
    compute = tf.float64 if x.dtype == tf.float64 else tf.float32

    def grouped_view(t):
        dynamic = tf.shape(t)
        shape = [dynamic[i] if d is None else d for i, d in enumerate(t.shape.as_list())]
        return _grouped(shape, groups, axis)

    def forward(x, gamma, beta):
        # Keras's own expression, so the values are stock's bit for bit.
        grouped, reduce, broadcast = grouped_view(x)
        xg = tf.cast(tf.reshape(x, grouped), compute)
        mean, variance = keras.ops.moments(xg, axes=reduce, keepdims=True)
        inv = keras.ops.rsqrt(variance + epsilon)
        if gamma is not None:
            inv = inv * tf.cast(tf.reshape(gamma, broadcast), compute)
        res = -mean * inv
        if beta is not None:
            res = res + tf.cast(tf.reshape(beta, broadcast), compute)
        y = tf.reshape(tf.cast(xg * inv + res, x.dtype), tf.shape(x))
        return y, (x, gamma, beta)

    def backward(dy, saved):
        x, gamma, beta = saved
        grouped, reduce, broadcast = grouped_view(x)
        xg = tf.cast(tf.reshape(x, grouped), compute)
        dyg = tf.cast(tf.reshape(dy, grouped), compute)
        mean = tf.reduce_mean(xg, axis=reduce, keepdims=True)
        centred = xg - mean
        r = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=reduce, keepdims=True)
                          + tf.constant(epsilon, compute))
        normalized = centred * r
        g = dyg if gamma is None else dyg * tf.reshape(tf.cast(gamma, compute), broadcast)
        dx = tf.reshape(normalized_input_grad(g, normalized, r, reduce), tf.shape(x))
        others = [i for i in range(len(grouped)) if i not in (axis, axis + 1)]

        def param_grad(t, param):
            if param is None:
                return None
            return tf.cast(tf.reshape(tf.reduce_sum(t, axis=others), [-1]), param.dtype)

        return (tf.cast(dx, x.dtype), param_grad(dyg * normalized, gamma),
                param_grad(dyg, beta))

    return hand_written_op(forward, backward, x, gamma, beta)
