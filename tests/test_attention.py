"""EinsumDense and MultiHeadAttention, every gradient hand-written: equal to stock (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from custom_layers.ops import contraction
from tests.graph_walk import tf_generated_gradients


def _step(layer, inputs, **kwargs):
    inputs = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = layer(*inputs, **kwargs)
    return [y, *tape.gradient(y, [*inputs, *layer.trainable_weights], tf.sin(y))]


def _assert_close(ours, stock, tolerance=1e-13):
    # A weight whose true gradient is 0 (the key bias: softmax ignores a shift shared
    # by all keys) holds rounding noise on both sides: measured against a hundredth of
    # the largest gradient.
    scale = max(np.abs(b.numpy()).max() for b in stock)
    for a, b in zip(ours, stock):
        a, b = a.numpy(), b.numpy()
        assert np.abs(a - b).max() <= tolerance * max(np.abs(b).max(), 1e-2 * scale)


@pytest.mark.parametrize("equation,output_shape,bias_axes,x_shape", [
    ("ab,bc->ac", 4, "c", (3, 5)), ("...b,bc->...c", 4, "c", (2, 3, 5)),
    ("abc,cd->abd", (3, 6), None, (2, 3, 4)), ("abcd,acde->abe", (3, 2), "e", (2, 3, 4, 5)),
    ("abc,cde->abde", (3, 2, 6), "de", (2, 3, 4)),
])
def test_einsum_dense_equals_stock(float64, equation, output_shape, bias_axes, x_shape):
    results = []
    for L in (custom_layers, keras.layers):
        keras.utils.set_random_seed(1)
        layer = L.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes,
                              bias_initializer="random_normal", activation="tanh")
        results.append(_step(layer, [np.random.default_rng(0).normal(size=x_shape)]))
    _assert_close(*results)


def test_einsum_numpy_reference_sums_away_and_broadcasts_back():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5))  # "b" is summed away
    out, cache = contraction.einsum_forward("abc,cd->ad", a, b)
    dy = rng.normal(size=out.shape)
    at, bt = tf.constant(a), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([at, bt])
        y = contraction.einsum("abc,cd->ad", at, bt)
    for ours, reference in zip(tape.gradient(y, [at, bt], tf.constant(dy)),
                               contraction.einsum_backward(dy, cache)):
        assert rel_error(ours.numpy(), reference) <= 1e-14
    with pytest.raises(ValueError, match="two operands"):
        contraction.einsum("ab->a", at, bt)


@pytest.mark.parametrize("kwargs,call", [
    (dict(num_heads=2, key_dim=4), {}),
    (dict(num_heads=2, key_dim=3, value_dim=5, dropout=0.3), dict(training=True)),
    (dict(num_heads=3, key_dim=4), dict(attention_mask="random")),
    (dict(num_heads=2, key_dim=4), dict(use_causal_mask=True)),
], ids=["plain", "dropout", "mask", "causal"])
def test_multi_head_attention_equals_stock(float64, kwargs, call):
    rng = np.random.default_rng(0)
    query, value = rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 5 if call.get(
        "use_causal_mask") else 7, 8))
    if call.get("attention_mask") == "random":
        call = dict(attention_mask=tf.constant(rng.uniform(size=(2, 5, 7)) > 0.3))
    results = []
    for L in (custom_layers, keras.layers):
        keras.utils.set_random_seed(1)
        layer = L.MultiHeadAttention(**kwargs)
        layer.build(query.shape, value.shape)
        if getattr(layer._dropout_layer, "seed_generator", None) is not None:
            layer._dropout_layer.seed_generator.state.assign([1, 0])  # the same masks
        results.append(_step(layer, [query, value], **call))
    assert [w.path.split("/", 1)[1] for w in layer.weights][:2] == ["query/kernel", "query/bias"]
    _assert_close(*results)


def test_a_small_transformer_backpropagates_only_through_hand_written_ops():
    inputs = keras.Input((6, 8))
    h = keras.layers.LayerNormalization()(inputs)
    x = keras.layers.Add()([inputs, keras.layers.MultiHeadAttention(2, 4, dropout=0.1)(h, h)])
    x = keras.layers.EinsumDense("abc,cd->abd", (6, 8), bias_axes="d", activation="gelu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x)))
    swapped = custom_layers.swap_layers(model)
    generated = tf_generated_gradients(swapped, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 6, 8], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated
