"""Dropout with a hand-written backward (``custom_layers.ops.inverted_dropout``)."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.ops import inverted_dropout


@keras.saving.register_keras_serializable(package="custom_layers")
class Dropout(keras.layers.Dropout):
    """Drop-in twin of ``keras.layers.Dropout``; only ``call``'s maths is replaced.

    The keep mask is drawn exactly as stock Keras draws it (a uniform sample
    from the layer's seed generator compared with ``rate``), so with the same
    seed both layers drop the same units; the backward multiplies by that mask.

    Input shape: any. Output shape: the input's.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1.0:
            return tf.zeros_like(inputs)
        inputs = tf.convert_to_tensor(inputs)
        noise_shape = tf.shape(inputs)
        if self.noise_shape is not None:
            noise_shape = [noise_shape[i] if d is None else d for i, d in enumerate(self.noise_shape)]
        uniform = keras.random.uniform(noise_shape, dtype=inputs.dtype, seed=self.seed_generator)
        return inverted_dropout.dropout(inputs, uniform >= self.rate, self.rate)
