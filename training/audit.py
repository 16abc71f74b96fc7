"""Live gradient audit: the hand-written backward checked against TensorFlow autodiff while training.

Every ``--audit_every`` steps, one training batch goes through the custom
model and through a stock-Keras twin holding the same weights; the weight
gradients of the same loss are compared per layer and weight. The
normwise relative difference (``custom_layers.gradcheck.rel_error``:
``max|ours - stock| / max(|ours|, |stock|)``) goes to
TensorBoard as ``gradient_audit/<layer>/<weight>``, and a warning names any
weight above the tolerance.
"""

from __future__ import annotations

import time
from typing import Dict, Iterator, List

import keras
import tensorflow as tf
from absl import logging

import custom_layers
from custom_layers.gradcheck import rel_error

# float32 gradients of the same maths in another order differ by ~1e-6; a
# wrong backward differs by O(1). Mixed precision computes in float16.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 1e-1}


def _weight_gradients(model: keras.Model, loss_fn, images, labels) -> List[tf.Tensor]:
    with tf.GradientTape() as tape:
        # Inference mode: dropout off, so both models see the same function.
        loss = loss_fn(labels, model(images, training=False))
    return tape.gradient(loss, model.trainable_variables)


class GradientAudit(keras.callbacks.Callback):
    """Compares the model's gradients with a stock twin's every ``every`` steps."""

    def __init__(self, stock_twin: keras.Model, batches: Iterator, every: int, writer,
                 history: List[Dict]):
        super().__init__()
        self.stock = stock_twin
        self.batches = batches
        self.every = every
        self.writer = writer
        self.history = history
        self.largest = 0.0
        self.seconds = 0.0  # spent auditing, part of the training time
        # Each side with its own loss: the audit covers the hand-written loss gradient too.
        ours_loss = custom_layers.SparseCategoricalCrossentropy()
        stock_loss = keras.losses.SparseCategoricalCrossentropy()
        self._ours = tf.function(lambda x, y: _weight_gradients(self.model, ours_loss, x, y))
        self._theirs = tf.function(lambda x, y: _weight_gradients(self.stock, stock_loss, x, y))

    def audit(self, step: int) -> Dict[str, float]:
        """Runs one comparison now; returns {"layer/weight": relative difference}."""
        self.stock.set_weights(self.model.get_weights())
        images, labels = next(self.batches)
        ours, theirs = self._ours(images, labels), self._theirs(images, labels)
        differences = {}
        for variable, a, b in zip(self.model.trainable_variables, ours, theirs):
            name = "/".join(variable.path.split("/")[-2:])  # layer/weight, without the model's name
            differences[name] = rel_error(a, b)
        tolerance = TOLERANCE.get(self.model.compute_dtype, TOLERANCE["float32"])
        worst = max(differences, key=differences.get)
        self.largest = max(self.largest, differences[worst])
        if differences[worst] > tolerance:
            logging.warning("step %d  gradient audit: %s differs from autodiff by %.2e (tolerance %.0e)",
                            step, worst, differences[worst], tolerance)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for name, value in differences.items():
                    tf.summary.scalar(f"gradient_audit/{name}", value)
        self.history.append({"step": step, "gradient_audit_max": differences[worst]})
        return differences

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every == 0:
            start = time.perf_counter()
            self.audit(step)
            self.seconds += time.perf_counter() - start


def stock_twin(build, model: keras.Model) -> keras.Model:
    """``build()`` (the same architecture from stock layers) holding ``model``'s weights.

    Raises:
        ValueError: if the two do not have the same weights (set_weights says which).
    """
    twin = build()
    twin.set_weights(model.get_weights())
    return twin
