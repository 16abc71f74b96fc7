"""The loss a run trains with, for either layer kind."""

from __future__ import annotations

from typing import Any, Dict

import keras
import tensorflow as tf

import custom_layers


@keras.saving.register_keras_serializable(package="training")
class StockSmoothedSparseCrossentropy(keras.losses.Loss):
    """Stock ``keras.losses.categorical_crossentropy`` with label smoothing, on integer labels.

    Keras's sparse cross-entropy has no ``label_smoothing``; this one-hot
    encodes the labels and calls the categorical one, so that stock-layer runs
    train on TensorFlow's own autodiff of the same loss as
    ``custom_layers.SparseCategoricalCrossentropy(label_smoothing=...)``.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        onehot = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(onehot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_loss(layers: str, label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The hand-written loss for custom layers, stock Keras's for stock ones."""
    if layers == "custom":
        return custom_layers.SparseCategoricalCrossentropy(label_smoothing=label_smoothing)
    if label_smoothing:
        return StockSmoothedSparseCrossentropy(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()
