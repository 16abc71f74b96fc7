"""``Multiply``: drop-in for ``keras.layers.Multiply`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.backend import get_keras_mask, set_keras_mask

from custom_layers.ops import merging


@keras.saving.register_keras_serializable(package="custom_layers")
class Multiply(keras.layers.Multiply):
    """Keras's ``Multiply`` whose gradient is hand-written: each input receives dy
    times the product of the others.

    A subclass of the stock layer: its call (input checks, rank matching,
    masks) is Keras's own, and the arithmetic runs as ops of
    ``custom_layers.ops.merging`` in Keras's order: masked positions count as
    1 in the product and are 0 in the output, through ``merging.select``.
    """

    def _merge_function(self, inputs):
        masks = [get_keras_mask(x) for x in inputs]
        has_output_mask = all(mask is not None for mask in masks)
        output, output_mask = None, None
        for x, mask in zip(inputs, masks):
            if mask is not None:
                mask = tf.broadcast_to(tf.expand_dims(mask, -1), tf.shape(x))
                x = merging.select(mask, x, tf.ones([], x.dtype))
                if has_output_mask:
                    output_mask = mask if output_mask is None else tf.logical_or(output_mask, mask)
            output = x if output is None else merging.multiply(output, x)
        if has_output_mask:
            output = merging.select(output_mask, output, tf.zeros([], output.dtype))
            set_keras_mask(output, tf.reduce_any(output_mask, axis=-1))
        return output
