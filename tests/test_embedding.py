"""Embedding: the sparse hand-written gradient equals stock's (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import ops
from custom_layers.ops import embedding_lookup as emb
from tests.graph_walk import tf_generated_gradients


def _twins(**config):
    layers = [L.Embedding(7, 3, embeddings_initializer="random_normal", **config)
              for L in (custom_layers, keras.layers)]
    for layer in layers:
        layer.build()
    layers[0].set_weights(layers[1].get_weights())
    return layers


def _output_and_gradient(layer, ids, dy=None):
    with tf.GradientTape() as tape:
        y = layer(ids)
        values = y.flat_values if isinstance(y, tf.RaggedTensor) else y
        loss = tf.reduce_sum(values * (1 if dy is None else dy))
    return values, tape.gradient(loss, layer.embeddings)


def test_lookup_and_sparse_gradient_equal_stock_and_numpy(float64):
    ids = np.array([[1, 4, 4], [-1, 0, 1]])  # repeated and negative ids
    dy = np.random.default_rng(0).normal(size=(2, 3, 3))
    (y, grad), (y_stock, grad_stock) = (_output_and_gradient(l, ids, dy) for l in _twins())
    assert isinstance(grad, tf.IndexedSlices) and isinstance(grad_stock, tf.IndexedSlices)
    np.testing.assert_array_equal(y, y_stock)
    np.testing.assert_array_equal(tf.convert_to_tensor(grad), tf.convert_to_tensor(grad_stock))
    table = np.arange(21.0).reshape(7, 3)
    out, cache = emb.embedding_forward(table, ids)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, ops.embedding(table, ids).numpy())
    dense = emb.embedding_backward(dy, cache)
    np.testing.assert_array_equal(dense, tf.convert_to_tensor(grad_stock))
    assert dense[6].any() and not dense[2].any()  # -1 is row 6; row 2 is never looked up


@pytest.mark.parametrize("kind", ["sparse", "ragged", "float ids"])
def test_sparse_ragged_and_float_ids_equal_stock(kind):
    if kind == "sparse":
        ids = tf.SparseTensor([[0, 0], [1, 2]], [2, 1], (2, 3))  # absent cells: row 0, as stock
    elif kind == "ragged":
        ids = tf.ragged.constant([[1, 2, 2], [5]])
    else:
        ids = tf.constant([[1.0, 6.0]])
    (y, grad), (y_stock, grad_stock) = (_output_and_gradient(l, ids) for l in _twins())
    np.testing.assert_array_equal(y, y_stock)
    np.testing.assert_array_equal(tf.convert_to_tensor(grad), tf.convert_to_tensor(grad_stock))


def test_mixed_bfloat16_looks_up_float32_rows_and_casts_inside_the_op():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        ours, stock = _twins()
        ids = tf.constant([[3, 3, 0]])
        (y, grad), (y_stock, grad_stock) = (_output_and_gradient(l, ids) for l in (ours, stock))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert y.dtype == tf.bfloat16 and grad.values.dtype == tf.float32
    np.testing.assert_array_equal(y, y_stock)
    np.testing.assert_array_equal(tf.convert_to_tensor(grad), tf.convert_to_tensor(grad_stock))


def test_text_cnn_backward_is_hand_written():
    stock = keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(50, 8),
                              keras.layers.Conv1D(6, 3, activation="relu"),
                              keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(3)])
    model = custom_layers.swap_layers(stock)
    assert isinstance(model.layers[0], custom_layers.Embedding)
    generated = tf_generated_gradients(model, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 12], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated


def test_bad_ids_and_unsupported_options_are_refused_by_name():
    with pytest.raises(tf.errors.InvalidArgumentError, match="9 is not in"):
        custom_layers.Embedding(7, 3)(tf.constant([[1, 9]]))
    with pytest.raises(ValueError, match="ids must be integers"):
        ops.embedding(tf.zeros([4, 2]), tf.constant([0.5]))
    with pytest.raises(ValueError, match="LoRA"):
        custom_layers.Embedding(7, 3, lora_rank=2)
    with pytest.raises(ValueError, match="quantized"):
        layer = custom_layers.Embedding(7, 3)
        layer.build()
        layer.quantize("int8")
