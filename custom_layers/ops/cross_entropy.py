"""Sparse softmax cross-entropy with hand-written gradients: NumPy reference and TF ops.

Two inputs, as Keras takes them (``keras.losses.SparseCategoricalCrossentropy``):

- logits z (N, K): loss_i = log Σ_j e^{z_ij} − z_{i,y_i};
  dz_i = softmax(z_i) − onehot(y_i).
- probabilities p (N, K), clipped to [ε, 1 − ε] (ε = ``keras.config.epsilon()``)
  and treated as unnormalised, exactly as Keras's TensorFlow backend does:
  loss_i = log Σ_j p̃_ij − log p̃_{i,y_i};
  dp_ij = [ε ≤ p_ij ≤ 1 − ε] · (1 / Σ_k p̃_ik − [j = y_i] / p̃_{i,y_i}).

The mean over the batch is part of the op (its 1/N is in the gradient), so a
training step's loss gradient is this code's all the way to the model output.
The Keras loss class built on these ops is ``custom_layers.losses``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def softmax_loss(z: np.ndarray, y: np.ndarray) -> Tuple[float, np.ndarray]:
    """Mean cross-entropy of logits z (N, K) for labels y (N,); returns (loss, dz (N, K)).

    loss = -mean(log softmax(z)[n, y[n]]), dz = (softmax(z) - onehot(y)) / N.
    """
    y = np.asarray(y)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError("softmax_loss expects logits (N, K) and labels (N,). "
                         f"Received: {z.shape} and {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in [0, {z.shape[1]}).")
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = z.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dz = np.exp(log_probs)
    dz[np.arange(n), y] -= 1
    return float(loss), dz / n


def probability_loss(p: np.ndarray, y: np.ndarray, epsilon: float) -> Tuple[float, np.ndarray]:
    """Mean cross-entropy of probabilities p (N, K) clipped as Keras does; returns (loss, dp)."""
    n = p.shape[0]
    clipped = np.clip(p, epsilon, 1 - epsilon)
    total = clipped.sum(axis=1, keepdims=True)
    picked = clipped[np.arange(n), y]
    loss = np.mean(np.log(total[:, 0]) - np.log(picked))
    dp = np.broadcast_to(1.0 / total, p.shape).copy()
    dp[np.arange(n), y] -= 1.0 / picked
    dp *= (p >= epsilon) & (p <= 1 - epsilon)
    return float(loss), dp / n


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


def _check(labels: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
    if output.shape.rank != 2:
        raise ValueError(f"sparse cross-entropy expects outputs of shape (N, K). "
                         f"Received: output.shape={output.shape}")
    labels = tf.cast(labels, tf.int64)
    if labels.shape.rank == 2 and labels.shape[-1] == 1:
        labels = tf.squeeze(labels, -1)
    if labels.shape.rank != 1:
        raise ValueError(f"sparse cross-entropy expects labels of shape (N,) or (N, 1). "
                         f"Received: labels.shape={labels.shape}")
    return labels


def _loss_op(forward, backward, mean: bool, output: tf.Tensor) -> tf.Tensor:
    """A loss op from ``forward(out) -> (per_example (N,), saved)`` and
    ``backward(saved) -> d Σ per_example / d out``; ``mean`` returns the batch mean."""

    def loss_forward(output):
        per_example, saved = forward(output)
        if not mean:
            return per_example, (saved, None)
        count = tf.cast(tf.shape(per_example)[0], output.dtype)
        return tf.reduce_sum(per_example) / count, (saved, count)

    def loss_backward(d, saved):
        saved, count = saved
        return (backward(saved) * (d[:, None] if count is None else d / count),)

    return hand_written_op(loss_forward, loss_backward, output)


def sparse_softmax_cross_entropy(labels: tf.Tensor, logits: tf.Tensor,
                                 mean: bool = True) -> tf.Tensor:
    """Cross-entropy of logits (N, K) for integer labels (N,); hand-written gradient.

    Returns the batch mean, or with ``mean=False`` the (N,) per-example losses.
    """
    logits = tf.convert_to_tensor(logits)
    labels = _check(labels, logits)
    onehot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)

    def forward(z):
        shifted = z - tf.reduce_max(z, axis=-1, keepdims=True)
        log_probs = shifted - tf.math.log(tf.reduce_sum(tf.exp(shifted), -1, keepdims=True))
        return -tf.reduce_sum(log_probs * onehot, -1), log_probs

    return _loss_op(forward, lambda log_probs: tf.exp(log_probs) - onehot, mean, logits)


def sparse_probability_cross_entropy(labels: tf.Tensor, probs: tf.Tensor,
                                     epsilon: Optional[float] = None,
                                     mean: bool = True) -> tf.Tensor:
    """Cross-entropy of probabilities (N, K), clipped as Keras does; hand-written gradient.

    Returns the batch mean, or with ``mean=False`` the (N,) per-example losses.
    """
    probs = tf.convert_to_tensor(probs)
    labels = _check(labels, probs)
    eps = keras.config.epsilon() if epsilon is None else epsilon
    onehot = tf.one_hot(labels, tf.shape(probs)[-1], dtype=probs.dtype)

    def forward(p):
        clipped = tf.clip_by_value(p, eps, 1 - eps)
        total = tf.reduce_sum(clipped, -1, keepdims=True)
        picked = tf.reduce_sum(clipped * onehot, -1, keepdims=True)
        inside = tf.cast((p >= eps) & (p <= 1 - eps), p.dtype)
        return tf.math.log(total[:, 0]) - tf.math.log(picked[:, 0]), (total, picked, inside)

    def backward(saved):
        total, picked, inside = saved
        return inside * (1.0 / total - onehot / picked)

    return _loss_op(forward, backward, mean, probs)
