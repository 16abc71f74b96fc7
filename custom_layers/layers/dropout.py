"""``Dropout``: drop-in for ``keras.layers.Dropout`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class Dropout(keras.layers.Dropout):
    """Inverted dropout whose gradient is ``custom_layers.ops.dropout``'s.

    A subclass of the stock layer: arguments, their checks, the seed
    generator and ``get_config`` are Keras's own. The keep mask is drawn
    exactly as stock Keras draws it (a uniform sample from the layer's seed
    generator compared with ``rate``), so with the same seed both layers drop
    the same units; the backward multiplies dy by that mask / (1 − rate).
    Integer inputs are cast to the compute dtype.

    Args:
        rate, noise_shape, seed: as in Keras.

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> Dropout(0.5, seed=1)(tf.ones([2, 4]), training=True).shape
    TensorShape([2, 4])
    """

    def call(self, inputs, training=False):
        inputs = cast_real_inputs(self, inputs)
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1.0:
            return tf.zeros_like(inputs)
        noise_shape = tf.shape(inputs)
        if self.noise_shape is not None:
            noise_shape = [noise_shape[i] if d is None else d for i, d in enumerate(self.noise_shape)]
        uniform = keras.random.uniform(noise_shape, dtype=inputs.dtype, seed=self.seed_generator)
        return ops.dropout(inputs, uniform >= self.rate, self.rate)
