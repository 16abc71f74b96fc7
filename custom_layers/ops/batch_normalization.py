"""Batch normalization: the NumPy reference (loops and vectorised) and the TF op.

x has any shape; statistics are taken over every axis but ``axis`` (the C
channels: -1 for NHWC, 1 for NCHW). With xhat = (x - mean) / sqrt(var + eps):

    forward   y = gamma * xhat + beta
    backward  dbeta = Σ dy,  dgamma = Σ dy * xhat,
              dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))

in training mode (the compact closed form: the batch statistics' own
gradients folded in), and dx = gamma * dy / sqrt(var + eps) in inference
mode, where mean and var are the moving statistics. Sums run over the
reduction axes, giving (C,) results. With per-position weights p (a mask,
normalised to sum to 1), the statistics are p-weighted averages and (up
to a term for Keras' epsilon in the normalisation)
dx = gamma / sqrt(var + eps) * (dy - p Σ dy - p xhat Σ dy xhat).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

# Keras adds this to the mask's weight sum (backend.epsilon()); so do we.
MASK_EPSILON = 1e-7


def _axes(ndim: int, axis: int) -> Tuple[Tuple[int, ...], int]:
    """(reduction axes, the channel axis made non-negative) for an ``ndim``-D tensor."""
    axis = axis % ndim
    return tuple(i for i in range(ndim) if i != axis), axis


# --------------------------------------------------------------------------- NumPy reference

class BatchNormCache(NamedTuple):
    """What the NumPy backward needs, and the (C,) mean and variance the forward used."""

    xhat: np.ndarray  # like x (vectorised) or (rows, C) (loops)
    gamma: np.ndarray
    inv_std: np.ndarray  # (C,)
    axis: int
    shape: Tuple[int, ...]  # broadcast shape of (C,) values, or x moved channels-last
    training: bool
    mean: np.ndarray
    var: np.ndarray


def batch_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axis: int = -1,
                      epsilon: float = 1e-3, training: bool = True,
                      moving_mean: Optional[np.ndarray] = None,
                      moving_var: Optional[np.ndarray] = None):
    """Vectorised batch norm.

    Args:
        x: any shape with C = x.shape[axis] channels.
        gamma, beta: (C,).
        training: batch statistics if True, else ``moving_mean``/``moving_var`` (C,).

    Returns:
        out: like x. cache: a ``BatchNormCache`` for ``batch_norm_backward``,
        holding the (C,) mean and variance used.
    """
    axes, axis = _axes(x.ndim, axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    if training:
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    else:
        mean, var = moving_mean, moving_var
    inv_std = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return out, BatchNormCache(xhat, gamma, inv_std, axis, tuple(shape), training, mean, var)


def batch_norm_backward(dout: np.ndarray, cache: BatchNormCache
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx (like x), dgamma (C,), dbeta (C,) from ``batch_norm_forward``'s cache."""
    xhat, gamma, inv_std, axis, shape, training = cache[:6]
    axes, _ = _axes(xhat.ndim, axis)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    scale = (gamma * inv_std).reshape(shape)
    if not training:
        return dout * scale, dgamma, dbeta
    m = dout.size // dbeta.size
    dx = scale * (dout - dbeta.reshape(shape) / m - xhat * dgamma.reshape(shape) / m)
    return dx, dgamma, dbeta


def batch_norm_forward_naive(x, gamma, beta, axis=-1, epsilon=1e-3, training=True,
                             moving_mean=None, moving_var=None):
    """The same with explicit loops over channels and elements (the test oracle)."""
    channels_last = np.moveaxis(x, axis, -1)
    rows = channels_last.reshape(-1, channels_last.shape[-1])
    out_rows = np.empty_like(rows)
    xhat_rows = np.empty_like(rows)
    means, variances, inv_stds = [], [], []
    for c in range(rows.shape[1]):
        if training:
            mean = sum(rows[i, c] for i in range(rows.shape[0])) / rows.shape[0]
            var = sum((rows[i, c] - mean) ** 2 for i in range(rows.shape[0])) / rows.shape[0]
        else:
            mean, var = moving_mean[c], moving_var[c]
        inv_std = 1.0 / np.sqrt(var + epsilon)
        for i in range(rows.shape[0]):
            xhat_rows[i, c] = (rows[i, c] - mean) * inv_std
            out_rows[i, c] = gamma[c] * xhat_rows[i, c] + beta[c]
        means.append(mean), variances.append(var), inv_stds.append(inv_std)
    out = np.moveaxis(out_rows.reshape(channels_last.shape), -1, axis)
    return out, BatchNormCache(xhat_rows, gamma, np.array(inv_stds), axis, channels_last.shape,
                               training, np.array(means), np.array(variances))


def batch_norm_backward_naive(dout, cache: BatchNormCache):
    """Loop form of ``batch_norm_backward``."""
    xhat_rows, gamma, inv_stds, axis, channels_last_shape, training = cache[:6]
    d_rows = np.moveaxis(dout, axis, -1).reshape(xhat_rows.shape)
    m, channels = xhat_rows.shape
    dx_rows = np.empty_like(d_rows)
    dgamma, dbeta = np.zeros(channels), np.zeros(channels)
    for c in range(channels):
        for i in range(m):
            dbeta[c] += d_rows[i, c]
            dgamma[c] += d_rows[i, c] * xhat_rows[i, c]
        for i in range(m):
            centred = d_rows[i, c] - (dbeta[c] / m + xhat_rows[i, c] * dgamma[c] / m if training else 0.0)
            dx_rows[i, c] = gamma[c] * inv_stds[c] * centred
    dx = np.moveaxis(dx_rows.reshape(channels_last_shape), -1, axis)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- TensorFlow ops

def _broadcast(v: tf.Tensor, ndim: int, axis: int) -> tf.Tensor:
    shape = [1] * ndim
    shape[axis] = -1
    return tf.reshape(v, shape)


def batch_norm_train(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, axis: int,
                     epsilon: float, mask: Optional[tf.Tensor] = None
                     ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Training-mode batch norm with the hand-written backward.

    Args:
        x: any float shape, C = x.shape[axis].
        gamma, beta: (C,), same dtype as x.
        mask: optional, x's shape without ``axis`` (Keras' convention: one
            less dimension, the last); positions where it is 0 do not count
            in the statistics.

    Returns:
        y like x, and the (C,) batch mean and variance, for the moving
        statistics: they leave through ``tf.stop_gradient``.
    """
    ndim = x.shape.rank
    axes, axis = _axes(ndim, axis)
    weights = None
    if mask is not None:
        w = tf.cast(tf.broadcast_to(tf.expand_dims(mask, -1), tf.shape(x)), x.dtype)
        weights = w / (tf.reduce_sum(w, axes, keepdims=True) + MASK_EPSILON)

    def average(t):
        if weights is None:
            return tf.reduce_mean(t, axes, keepdims=True)
        return tf.reduce_sum(weights * t, axes, keepdims=True)

    def forward(x, gamma, beta):
        mean = average(x)
        centred = x - mean
        var = average(tf.square(centred))
        inv_std = tf.math.rsqrt(var + epsilon)
        xhat = centred * inv_std
        g = _broadcast(gamma, ndim, axis)
        y = g * xhat + _broadcast(beta, ndim, axis)
        # x, not xhat, is kept for the backward, as stock's fused kernel does:
        # the layer before usually holds x anyway, so xhat would be a second copy.
        return (y, tf.reshape(mean, [-1]), tf.reshape(var, [-1])), (x, inv_std, g, mean)

    def backward(dys, saved):
        dy = dys[0]  # the batch statistics leave through stop_gradient
        x, inv_std, g, mean = saved
        # After dy exists: else TensorFlow may run this for every layer right
        # after the forward, holding all the xhat the recompute is to avoid.
        with tf.control_dependencies([dy]):
            xhat = (x - mean) * inv_std
        dbeta = tf.reduce_sum(dy, axes, keepdims=True)
        dgamma = tf.reduce_sum(dy * xhat, axes, keepdims=True)
        # p_j times the plain sums: mean(dy) and mean(dy * xhat) without a mask.
        if weights is None:
            p = 1.0 / tf.cast(tf.size(dy) // tf.size(dbeta), dy.dtype)
            dx = g * inv_std * (dy - p * dbeta - p * xhat * dgamma)
        else:
            # The mask's weights sum to s = 1 - O(MASK_EPSILON), not 1: then
            # Σ p (x - mean) = (1 - s) mean, which shifts the variance's gradient.
            shift = (1.0 - tf.reduce_sum(weights, axes, keepdims=True)) * mean * inv_std
            dx = g * inv_std * (dy - weights * dbeta - weights * (xhat - shift) * dgamma)
        return dx, tf.reshape(dgamma, [-1]), tf.reshape(dbeta, [-1])

    y, mean, var = hand_written_op(forward, backward, x, gamma, beta)
    return y, tf.stop_gradient(mean), tf.stop_gradient(var)


def batch_norm_inference(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor,
                         variance: tf.Tensor, axis: int, epsilon: float) -> tf.Tensor:
    """Inference-mode batch norm with the moving statistics (all (C,)); y like x."""
    ndim = x.shape.rank
    axes, axis = _axes(ndim, axis)

    def forward(x, gamma, beta, mean, variance):
        inv_std = tf.math.rsqrt(_broadcast(variance, ndim, axis) + epsilon)
        xhat = (x - _broadcast(mean, ndim, axis)) * inv_std
        g = _broadcast(gamma, ndim, axis)
        y = g * xhat + _broadcast(beta, ndim, axis)
        return y, (xhat, inv_std, g * inv_std)

    def backward(dy, saved):
        xhat, inv_std, scale = saved
        dx = dy * scale
        dgamma = tf.reduce_sum(dy * xhat, axes)
        dbeta = tf.reduce_sum(dy, axes)
        dmean = -tf.reduce_sum(dx, axes)
        dvariance = -0.5 * tf.reduce_sum(dx * xhat * inv_std, axes)
        return dx, dgamma, dbeta, dmean, dvariance

    return hand_written_op(forward, backward, x, gamma, beta, mean, variance)
