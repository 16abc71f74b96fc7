"""``Rescaling``: drop-in for ``keras.layers.Rescaling`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class Rescaling(keras.layers.Rescaling):
    """x · scale + offset whose gradient is ``custom_layers.ops.rescale``'s (dy · scale).

    A subclass of the stock layer: arguments, masking and config are Keras's.
    As stock, array constants are reshaped to (C, 1, 1) when the image data
    format is channels_first; integer inputs (raw pixels) are cast to the
    compute dtype.

    Args:
        scale, offset: numbers or arrays, as in Keras.

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> Rescaling(1 / 255)(tf.constant([[0.0, 255.0]])).numpy()
    array([[0., 1.]], dtype=float32)
    """

    def call(self, inputs):
        x = cast_real_inputs(self, inputs)
        scale = tf.cast(self.scale, x.dtype)
        if scale.shape.rank and keras.config.image_data_format() == "channels_first":
            scale = tf.reshape(scale, scale.shape.as_list() + [1] * (3 - scale.shape.rank))
        return ops.rescale(x, scale, self.offset)
