"""Sparse softmax cross-entropy with hand-written gradients: NumPy reference and TF ops.

Two inputs, as Keras takes them (``keras.losses.SparseCategoricalCrossentropy``):

- logits z (N, K): loss_i = log Σ_j e^{z_ij} − z_{i,y_i};
  dz_i = softmax(z_i) − onehot(y_i).
- probabilities p (N, K), clipped to [ε, 1 − ε] (ε = ``keras.config.epsilon()``)
  and treated as unnormalised, exactly as Keras's TensorFlow backend does:
  loss_i = log Σ_j p̃_ij − log p̃_{i,y_i};
  dp_ij = [ε ≤ p_ij ≤ 1 − ε] · (1 / Σ_k p̃_ik − [j = y_i] / p̃_{i,y_i}).

Label smoothing ε replaces onehot(y) by the target q = (1 − ε)·onehot(y) + ε/K
(as ``keras.losses.CategoricalCrossentropy(label_smoothing=ε)``): the loss is
−Σ_j q_ij log softmax(z_i)_j and dz_i = softmax(z_i) − q_i; for probabilities
−Σ_j q_ij log(p̃_ij / Σ_k p̃_ik) and dp_ij = [ε ≤ p_ij ≤ 1 − ε]·(1/Σ_k p̃_ik − q_ij/p̃_ij).

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


def smoothed_targets(y: np.ndarray, classes: int, label_smoothing: float = 0.0) -> np.ndarray:
    """q (N, K) = (1 − ε)·onehot(y) + ε/K."""
    q = np.full((len(y), classes), label_smoothing / classes)
    q[np.arange(len(y)), y] += 1.0 - label_smoothing
    return q


def softmax_loss(z: np.ndarray, y: np.ndarray,
                 label_smoothing: float = 0.0) -> Tuple[float, np.ndarray]:
    """Mean cross-entropy of logits z (N, K) for labels y (N,); returns (loss, dz (N, K)).

    loss = -mean(Σ_j q[n, j] log softmax(z)[n, j]), dz = (softmax(z) - q) / N,
    q the (smoothed) targets.
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
    q = smoothed_targets(y, z.shape[1], label_smoothing)
    loss = -(q * log_probs).sum(axis=1).mean()
    return float(loss), (np.exp(log_probs) - q) / n


def probability_loss(p: np.ndarray, y: np.ndarray, epsilon: float,
                     label_smoothing: float = 0.0) -> Tuple[float, np.ndarray]:
    """Mean cross-entropy of probabilities p (N, K) clipped as Keras does; returns (loss, dp)."""
    n = p.shape[0]
    q = smoothed_targets(np.asarray(y), p.shape[1], label_smoothing)
    clipped = np.clip(p, epsilon, 1 - epsilon)
    total = clipped.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) - (q * np.log(clipped)).sum(axis=1))
    dp = 1.0 / total - q / clipped
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


def _targets(labels: tf.Tensor, output: tf.Tensor, label_smoothing: float) -> tf.Tensor:
    """(1 − ε)·onehot + ε/K in the output's dtype."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]. Received: {label_smoothing!r}")
    classes = tf.shape(output)[-1]
    onehot = tf.one_hot(labels, classes, dtype=output.dtype)
    if not label_smoothing:
        return onehot
    return onehot * (1.0 - label_smoothing) + label_smoothing / tf.cast(classes, output.dtype)


def sparse_softmax_cross_entropy(labels: tf.Tensor, logits: tf.Tensor,
                                 mean: bool = True, label_smoothing: float = 0.0) -> tf.Tensor:
    """Cross-entropy of logits (N, K) for integer labels (N,); hand-written gradient.

    Returns the batch mean, or with ``mean=False`` the (N,) per-example losses.
    ``label_smoothing`` ε mixes the targets with the uniform distribution.
    """
    logits = tf.convert_to_tensor(logits)
    labels = _check(labels, logits)
    onehot = _targets(labels, logits, label_smoothing)

    def forward(z):
        shifted = z - tf.reduce_max(z, axis=-1, keepdims=True)
        log_probs = shifted - tf.math.log(tf.reduce_sum(tf.exp(shifted), -1, keepdims=True))
        return -tf.reduce_sum(log_probs * onehot, -1), log_probs

    return _loss_op(forward, lambda log_probs: tf.exp(log_probs) - onehot, mean, logits)


def sparse_probability_cross_entropy(labels: tf.Tensor, probs: tf.Tensor,
                                     epsilon: Optional[float] = None,
                                     mean: bool = True, label_smoothing: float = 0.0) -> tf.Tensor:
    """Cross-entropy of probabilities (N, K), clipped as Keras does; hand-written gradient.

    Returns the batch mean, or with ``mean=False`` the (N,) per-example losses.
    ``label_smoothing`` ε mixes the targets with the uniform distribution.
    """
    probs = tf.convert_to_tensor(probs)
    labels = _check(labels, probs)
    eps = keras.config.epsilon() if epsilon is None else epsilon
    targets = _targets(labels, probs, label_smoothing)

    def forward(p):
        clipped = tf.clip_by_value(p, eps, 1 - eps)
        total = tf.reduce_sum(clipped, -1, keepdims=True)
        inside = tf.cast((p >= eps) & (p <= 1 - eps), p.dtype)
        loss = tf.math.log(total[:, 0]) - tf.reduce_sum(targets * tf.math.log(clipped), -1)
        return loss, (total, clipped, inside)

    def backward(saved):
        total, clipped, inside = saved
        return inside * (1.0 / total - targets / clipped)

    return _loss_op(forward, backward, mean, probs)
