"""``MultiHeadAttention``: drop-in for ``keras.layers.MultiHeadAttention`` with hand-written backwards."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf
from keras.src.layers.attention import multi_head_attention as keras_mha

from custom_layers.layers.dropout import Dropout
from custom_layers.layers.einsum_dense import EinsumDense
from custom_layers.layers.softmax import Softmax
from custom_layers.ops import contraction, merging


@contextlib.contextmanager
def _twin_sublayers():
    """Keras's build makes its projections, softmax and dropout from the names its
    module holds: they name the twins while it runs, so the weights, their order
    and the config stay exactly stock's."""
    saved = keras_mha.EinsumDense, keras_mha.Softmax, keras_mha.Dropout
    keras_mha.EinsumDense, keras_mha.Softmax, keras_mha.Dropout = EinsumDense, Softmax, Dropout
    try:
        yield
    finally:
        keras_mha.EinsumDense, keras_mha.Softmax, keras_mha.Dropout = saved


@keras.saving.register_keras_serializable(package="custom_layers")
class MultiHeadAttention(keras.layers.MultiHeadAttention):
    """Keras's multi-head attention with every gradient hand-written: the query,
    key, value and output projections are ``EinsumDense`` twins, the scores
    QKᵀ/√d and their weighting of V are ``custom_layers.ops.einsum`` (dQ, dK,
    dV are einsums of dy with the other operand), the softmax over the key
    axes (masks included) is the ``Softmax`` twin (its Jacobian
    y ⊙ (dy − Σ dy ⊙ y)) and the attention dropout the ``Dropout`` twin.

    A subclass of the stock layer: arguments, weights (their order included)
    and config are Keras's own. The scores are always computed explicitly,
    never by ``ops.dot_product_attention`` (whose gradient TensorFlow would
    write): values agree with stock's to rounding. With ``use_gate`` the
    product with the gate is in Keras's call, and TensorFlow's.
    """

    def build(self, query_shape, value_shape, key_shape=None):
        # Keras matches build's argument names to call's: the signature stays stock's.
        with _twin_sublayers():
            super().build(query_shape, value_shape, key_shape)

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        if use_causal_mask:
            causal = self._compute_causal_mask(query, value)
            attention_mask = causal if attention_mask is None else tf.logical_and(
                tf.cast(attention_mask, tf.bool), causal)
        # Keras's own cast (through float32 for a Python float), so values are stock's.
        query = merging.multiply(query, keras.ops.cast(self._inverse_sqrt_key_dim, query.dtype))
        scores = contraction.einsum(self._dot_product_equation, key, query)
        scores = self._masked_softmax(scores, attention_mask)
        weights = self._dropout_layer(scores, training=training) if self._dropout > 0 else scores
        return contraction.einsum(self._combine_equation, weights, value), scores
