"""``SparseCategoricalCrossentropy``: the Keras loss on the hand-written cross-entropy ops.

The maths (NumPy reference and TF ops) is ``custom_layers.ops.cross_entropy``.
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf
# Keras's own replica scaling, so the loss matches stock under tf.distribute.
from keras.src.losses.loss import scale_loss_for_distribution

from custom_layers.ops.cross_entropy import (
    sparse_probability_cross_entropy,
    sparse_softmax_cross_entropy,
)


def _logits_behind(y_pred) -> Optional[tf.Tensor]:
    """The logits a softmax output carries (Keras's ``_keras_logits``), as Keras finds them."""
    logits = getattr(y_pred, "_keras_logits", None)
    if logits is None and not isinstance(y_pred, tf.__internal__.EagerTensor) and \
            getattr(getattr(y_pred, "op", None), "type", None) == "Softmax":
        logits = y_pred.op.inputs[0]
    return logits


@keras.saving.register_keras_serializable(package="custom_layers")
class SparseCategoricalCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Drop-in twin of ``keras.losses.SparseCategoricalCrossentropy`` with hand-written gradients.

    Same arguments, config, and values as stock, including the way stock finds
    the logits behind a softmax output. With the default reduction and no
    sample weights or masks, the whole loss, batch mean included, is one op
    of this module. With sample weights or masks the per-example losses are
    still hand-written and Keras weights and reduces them. ``ignore_class``
    raises a ValueError.

    One argument stock's sparse loss lacks: ``label_smoothing`` ε in [0, 1]
    trains towards (1 − ε)·onehot + ε/K, exactly as
    ``keras.losses.CategoricalCrossentropy(label_smoothing=ε)`` on one-hot labels.
    """

    def __init__(self, *args, label_smoothing: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if self.ignore_class is not None:
            raise ValueError("custom_layers.SparseCategoricalCrossentropy does not support "
                             f"ignore_class. Received: ignore_class={self.ignore_class!r}")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0 <= label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be a number in [0, 1]. "
                             f"Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, y_true, y_pred, sample_weight=None):
        simple = (sample_weight is None and getattr(y_pred, "_keras_mask", None) is None
                  and self.reduction == "sum_over_batch_size")
        if not simple:
            return super().__call__(y_true, y_pred, sample_weight)
        with tf.name_scope(self.name):
            # As stock: outputs are taken in the loss's dtype (a cast drops _keras_logits).
            y_pred = tf.cast(y_pred, self.dtype)
            loss = self._losses(y_true, y_pred, mean=True)
            return scale_loss_for_distribution(tf.cast(loss, self.dtype))

    def _losses(self, y_true, y_pred, mean: bool) -> tf.Tensor:
        logits = _logits_behind(y_pred)
        if self.from_logits or logits is not None:
            return sparse_softmax_cross_entropy(y_true, y_pred if logits is None else logits,
                                                mean, self.label_smoothing)
        return sparse_probability_cross_entropy(y_true, y_pred, mean=mean,
                                                label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def call(self, y_true, y_pred):
        """Per-example losses (N,), each with its hand-written gradient."""
        return self._losses(y_true, y_pred, mean=False)
