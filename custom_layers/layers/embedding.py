"""``Embedding``: drop-in for ``keras.layers.Embedding`` with a hand-written sparse backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import NoLoraOrQuantization


@keras.saving.register_keras_serializable(package="custom_layers")
class Embedding(NoLoraOrQuantization, keras.layers.Embedding):
    """Keras's embedding whose gradient is ``custom_layers.ops.embedding``'s: dW as
    ``tf.IndexedSlices`` over the looked-up rows, as stock's.

    A subclass of the stock layer: arguments (``input_dim``, ``output_dim``,
    ``mask_zero``, ``weights``) and their checks, the ``embeddings`` weight
    (float32 under mixed precision), its initializer, regularizer and
    constraint, the mask and ``get_config`` are Keras's own. Ids of any
    numeric dtype are cast to int32 first and negative ids count from the
    end, as stock's; sparse ids look up row 0 where absent (stock's default
    id) and ragged ids give ragged outputs. LoRA and
    quantization raise a ValueError (``quantization_config=None``, which
    stock configs carry, is accepted).

    Input shape:
        ids of any shape (N, ...). Output shape: (N, ..., output_dim).

    Example:

    >>> Embedding(10, 3)(tf.constant([[1, 2, 2]])).shape
    TensorShape([1, 3, 3])
    """

    def call(self, inputs):
        table = tf.convert_to_tensor(self.embeddings)
        if isinstance(inputs, tf.SparseTensor):
            # Stock's lookup gives an absent position row 0 (its default id): densify with 0.
            inputs = tf.sparse.to_dense(inputs, default_value=0)
        if isinstance(inputs, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self._lookup, table, inputs)
        return self._lookup(table, inputs)

    def _lookup(self, table: tf.Tensor, ids) -> tf.Tensor:
        ids = tf.convert_to_tensor(ids)
        if ids.dtype not in (tf.int32, tf.int64):
            ids = tf.cast(ids, tf.int32)
        return ops.embedding(table, ids, self.compute_dtype)
