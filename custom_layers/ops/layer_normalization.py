"""Layer normalisation: the NumPy reference and the TF op with a closed-form backward.

Over the normalised axes (M values per example), with μ, σ² their mean and
variance and r = 1 / √(σ² + ε):

    x̂ = (x − μ) r,   y = γ x̂ + β
    dβ = Σ dy,  dγ = Σ dy ⊙ x̂          (sums over the other axes)
    dx = r (g − mean(g) − x̂ mean(g ⊙ x̂)),   g = γ dy

``rms_scaling`` (Keras's deprecated form, which scales by the centred
variance and has no β): y = γ x r, and

    dx = r g − r³ c mean(g ⊙ x),   c = x − μ

The axes are any set (``keras.layers.LayerNormalization``'s ``axis``); γ
and β have the input's sizes on them. Statistics and gradients are computed
in float32 at least, as Keras does; dx comes back in x's dtype.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op


def normalized_axes(rank: int, axis) -> Tuple[int, ...]:
    """``axis`` (an int or a sequence of ints, negative allowed) as sorted positive axes."""
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -rank <= a < rank:
            raise ValueError(f"layer normalization axis {a!r} is not an axis of an input of "
                             f"rank {rank}")
        out.append(int(a) % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"layer normalization axes repeat: {axis!r}")
    return tuple(sorted(out))


def _param_shape(shape: Sequence[int], axes: Tuple[int, ...]):
    """The shape γ and β broadcast in: the input's sizes on ``axes``, 1 elsewhere."""
    return [shape[i] if i in axes else 1 for i in range(len(shape))]


def layer_norm_forward(x: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray],
                       axis=-1, epsilon: float = 1e-3, rms_scaling: bool = False):
    """x: any shape; gamma, beta: x's sizes on the axes (or None). Returns out and the cache."""
    axes = normalized_axes(x.ndim, axis)
    shape = _param_shape(x.shape, axes)
    mean = x.mean(axis=axes, keepdims=True)
    r = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + epsilon)
    g = 1 if gamma is None else gamma.reshape(shape)
    if rms_scaling:
        out = x * r * g
    else:
        out = (x - mean) * r * g + (0 if beta is None else beta.reshape(shape))
    return out, (x, gamma, beta, axes, mean, r, rms_scaling)


def layer_norm_backward(dout: np.ndarray, cache):
    """Returns dx (like x), dgamma, dbeta (like gamma and beta; None where absent)."""
    x, gamma, beta, axes, mean, r, rms_scaling = cache
    shape = _param_shape(x.shape, axes)
    others = tuple(i for i in range(x.ndim) if i not in axes)
    g = dout * (1 if gamma is None else gamma.reshape(shape))
    if rms_scaling:
        dx = r * g - r ** 3 * (x - mean) * (g * x).mean(axis=axes, keepdims=True)
        dgamma = (dout * x * r).sum(axis=others)
    else:
        xhat = (x - mean) * r
        dx = r * (g - g.mean(axis=axes, keepdims=True)
                  - xhat * (g * xhat).mean(axis=axes, keepdims=True))
        dgamma = (dout * xhat).sum(axis=others)
    dbeta = dout.sum(axis=others)
    return (dx, None if gamma is None else dgamma.reshape(gamma.shape),
            None if beta is None or rms_scaling else dbeta.reshape(beta.shape))


def normalize_row_naive(row: np.ndarray, epsilon: float):
    """One row's statistics by loops: (centred values, r = 1 / √(σ² + ε))."""
    m = len(row)
    mean = sum(row[j] for j in range(m)) / m
    centred = np.array([row[j] - mean for j in range(m)])
    variance = sum(centred[j] ** 2 for j in range(m)) / m
    return centred, 1 / np.sqrt(variance + epsilon)


def normalize_row_backward_naive(d_scaled: np.ndarray, d_r: float, centred: np.ndarray,
                                 r: float) -> np.ndarray:
    """Back through ``normalize_row_naive`` one step at a time (the cs231n staging),
    given the gradient of ``centred · r`` (``d_scaled``) and of r itself (``d_r``): r =
    (σ² + ε)^-½, σ² = Σ c² / M, c = x − μ, μ = Σ x / M. Returns dx (M,)."""
    m = len(centred)
    d_r = d_r + sum(d_scaled[j] * centred[j] for j in range(m))
    d_variance = -0.5 * r ** 3 * d_r
    d_centred = np.array([d_scaled[j] * r + 2 * centred[j] / m * d_variance for j in range(m)])
    d_mean = -sum(d_centred[j] for j in range(m))
    return np.array([d_centred[j] + d_mean / m for j in range(m)])


def _rows(x: np.ndarray, axes: Tuple[int, ...]):
    """x as (examples, normalised values), and the transpose that made it."""
    order = [i for i in range(x.ndim) if i not in axes] + list(axes)
    moved = np.transpose(x, order)
    size = int(np.prod([x.shape[a] for a in axes]))
    return moved.reshape(-1, size), order, moved.shape


def layer_norm_forward_naive(x: np.ndarray, gamma: Optional[np.ndarray],
                             beta: Optional[np.ndarray], axis=-1, epsilon: float = 1e-3,
                             rms_scaling: bool = False):
    """``layer_norm_forward`` by loops over each example's normalised values (the test
    oracle). Returns out and the cache of ``layer_norm_backward_naive``."""
    axes = normalized_axes(x.ndim, axis)
    rows, order, moved_shape = _rows(x, axes)
    m = rows.shape[1]
    g = np.ones(m) if gamma is None else gamma.reshape(-1)
    b = np.zeros(m) if beta is None or rms_scaling else beta.reshape(-1)
    out, stats = np.empty_like(rows), []
    for i in range(rows.shape[0]):
        centred, r = normalize_row_naive(rows[i], epsilon)
        for j in range(m):
            out[i, j] = (rows[i, j] if rms_scaling else centred[j]) * r * g[j] + b[j]
        stats.append((centred, r))
    out = np.transpose(out.reshape(moved_shape), np.argsort(order))
    return out, (rows, stats, g, gamma, beta, order, moved_shape, rms_scaling)


def layer_norm_backward_naive(dout: np.ndarray, cache):
    """Loop form of ``layer_norm_backward``: back through each row's steps."""
    rows, stats, g, gamma, beta, order, moved_shape, rms_scaling = cache
    d_rows = np.transpose(dout, order).reshape(rows.shape)
    dx = np.empty_like(rows)
    dgamma, dbeta = np.zeros(rows.shape[1]), np.zeros(rows.shape[1])
    for i, (centred, r) in enumerate(stats):
        scaled = rows[i] if rms_scaling else centred
        for j in range(rows.shape[1]):
            dgamma[j] += d_rows[i, j] * scaled[j] * r
            dbeta[j] += d_rows[i, j]
        d_out = d_rows[i] * g
        if rms_scaling:  # y = γ x r: x reaches y directly and through r
            d_r = sum(d_out[j] * rows[i, j] for j in range(len(g)))
            dx[i] = d_out * r + normalize_row_backward_naive(np.zeros(len(g)), d_r, centred, r)
        else:
            dx[i] = normalize_row_backward_naive(d_out, 0.0, centred, r)
    dx = np.transpose(dx.reshape(moved_shape), np.argsort(order))
    return (dx, None if gamma is None else dgamma.reshape(gamma.shape),
            None if beta is None or rms_scaling else dbeta.reshape(beta.shape))


def normalized_input_grad(g: tf.Tensor, normalized: tf.Tensor, r: tf.Tensor,
                          axes) -> tf.Tensor:
    """dx of x̂ = (x − μ) r over ``axes``, given g = γ dy: r (g − mean(g) − x̂ mean(g ⊙ x̂))."""
    return r * (g - tf.reduce_mean(g, axis=axes, keepdims=True)
                - normalized * tf.reduce_mean(g * normalized, axis=axes, keepdims=True))


def layer_norm(x: tf.Tensor, gamma: Optional[tf.Tensor], beta: Optional[tf.Tensor], axis=-1,
               epsilon: float = 1e-3, rms_scaling: bool = False) -> tf.Tensor:
    """``keras.ops.layer_normalization`` with the closed-form backward of the module doc.

    Args:
        x: any shape with the normalised axes known.
        gamma, beta: x's sizes on the normalised axes, or None (beta is
            ignored, as by Keras, with ``rms_scaling``).
        axis: an int or a sequence of ints.
        epsilon: added to the variance.
        rms_scaling: Keras's variance-scaling form (no centring of the output).

    Returns:
        y, shaped like x, in x's dtype.
    """
    x = tf.convert_to_tensor(x)
    axes = list(normalized_axes(x.shape.rank, axis))
    if any(x.shape[a] is None for a in axes):
        raise ValueError(f"layer normalization needs the normalised axes {axes} known. "
                         f"Received shape {x.shape}")
    shape = _param_shape(x.shape.as_list(), axes)
    others = [i for i in range(x.shape.rank) if i not in axes]
    if rms_scaling:
        beta = None
    compute = tf.float64 if x.dtype == tf.float64 else tf.float32

    def forward(x, gamma, beta):
        # Keras's own expression, so the values are stock's bit for bit.
        y = keras.ops.layer_normalization(x, gamma, beta, axes, epsilon,
                                          **({"rms_scaling": True} if rms_scaling else {}))
        return tf.cast(y, x.dtype), (x, gamma, beta)

    def backward(dy, saved):
        x, gamma, beta = saved
        xc, dyc = tf.cast(x, compute), tf.cast(dy, compute)
        mean = tf.reduce_mean(xc, axis=axes, keepdims=True)
        centred = xc - mean
        r = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=axes, keepdims=True)
                          + tf.constant(epsilon, compute))  # not tf.cast: via float32
        g = dyc if gamma is None else dyc * tf.reshape(tf.cast(gamma, compute), shape)
        if rms_scaling:
            dx = r * g - r * r * r * centred * tf.reduce_mean(g * xc, axis=axes, keepdims=True)
            normalized = xc * r
        else:
            normalized = centred * r
            dx = normalized_input_grad(g, normalized, r, axes)

        def param_grad(t, param):
            if param is None:
                return None
            return tf.cast(tf.reshape(tf.reduce_sum(t, axis=others), tf.shape(param)), param.dtype)

        return (tf.cast(dx, x.dtype), param_grad(dyc * normalized, gamma),
                param_grad(dyc, beta))

    return hand_written_op(forward, backward, x, gamma, beta)
