"""Average/global pooling and dropout: NumPy loops == vectorised == TF op == stock autodiff."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.ops import average_pooling as avg_pool
from custom_layers.ops import global_pooling, inverted_dropout
from custom_layers.gradcheck import (numeric_gradient, numeric_tolerance, rel_error,
                                     rounding_tolerance, tf_gradients)
from tests.test_layers import gradient_op_types

POOL_CASES = list(itertools.product([1, 2, 3], [1, 2, 3], ["valid", "same"]))


@pytest.mark.parametrize("k,stride,padding", POOL_CASES)
def test_avg_pool_reference_and_op_agree_with_stock(k, stride, padding):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.normal(size=(2, 7, 6, 3))
    out, cache = avg_pool.avg_pool2d_forward(x, k, stride, padding)
    out_naive, cache_naive = avg_pool.avg_pool2d_forward_naive(x, k, stride, padding)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx = avg_pool.avg_pool2d_backward(dout, cache)
    np.testing.assert_allclose(dx, avg_pool.avg_pool2d_backward_naive(dout, cache_naive),
                               rtol=1e-12, atol=1e-12)
    numeric = numeric_gradient(lambda: avg_pool.avg_pool2d_forward(x, k, stride, padding)[0], x, dout)
    assert rel_error(dx, numeric) <= numeric_tolerance(out, dout, dx)
    (ours,) = tf_gradients(lambda t: avg_pool.avg_pool2d(t, k, stride, padding), (x,), dout)
    (stock,) = tf_gradients(lambda t: tf.nn.avg_pool2d(t, k, stride, padding.upper()), (x,), dout)
    np.testing.assert_allclose(avg_pool.avg_pool2d(tf.constant(x), k, stride, padding), out, rtol=1e-12)
    assert rel_error(ours, stock) <= rounding_tolerance(x)
    assert rel_error(ours, dx) <= rounding_tolerance(x)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("axes", [(1, 2), (2, 3)])
def test_global_pooling_agrees_with_stock_including_ties(kind, axes):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, size=(2, 4, 5, 3)).astype(np.float64)  # many ties
    out, cache = global_pooling.global_pool_forward(x, kind, axes)
    dout = rng.normal(size=out.shape)
    reference = global_pooling.global_pool_backward(dout, cache)
    op = global_pooling.global_avg_pool if kind == "avg" else global_pooling.global_max_pool
    stock_fn = tf.reduce_mean if kind == "avg" else tf.reduce_max
    (ours,) = tf_gradients(lambda t: op(t, axes), (x,), dout)
    (stock,) = tf_gradients(lambda t: stock_fn(t, axes, keepdims=True), (x,), dout)
    assert rel_error(ours, stock) <= rounding_tolerance(x)
    assert rel_error(ours, reference) <= rounding_tolerance(x)
    if kind == "avg":
        numeric = numeric_gradient(lambda: global_pooling.global_pool_forward(x, kind, axes)[0], x, dout)
        assert rel_error(reference, numeric) <= numeric_tolerance(out, dout, reference)


LAYER_PAIRS = [
    (custom_layers.AveragePooling2D, keras.layers.AveragePooling2D, dict(pool_size=3, strides=2, padding="same")),
    (custom_layers.AveragePooling2D, keras.layers.AveragePooling2D,
     dict(pool_size=2, data_format="channels_first")),
    (custom_layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling2D, dict()),
    (custom_layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling2D,
     dict(data_format="channels_first", keepdims=True)),
    (custom_layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling2D, dict(keepdims=True)),
    (custom_layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling2D, dict(data_format="channels_first")),
]


@pytest.mark.parametrize("custom_cls,stock_cls,kwargs", LAYER_PAIRS)
def test_pooling_layers_are_drop_ins(custom_cls, stock_cls, kwargs):
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 7, 3)), tf.float64)
    ours, stock = custom_cls(dtype="float64", **kwargs), stock_cls(dtype="float64", **kwargs)
    results = []
    for layer in (ours, stock):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        results.append((y.numpy(), tape.gradient(y, x, output_gradients=tf.ones_like(y)).numpy()))
    (y_ours, dx_ours), (y_stock, dx_stock) = results
    assert y_ours.shape == y_stock.shape == tuple(ours.compute_output_shape(x.shape))
    np.testing.assert_allclose(y_ours, y_stock, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_ours, dx_stock, rtol=1e-12, atol=1e-12)
    config = ours.get_config()
    assert config == {**stock.get_config(), "name": config["name"]}
    assert custom_cls.from_config(config).get_config() == config


def test_dropout_drops_the_same_units_as_stock_and_backprops_through_them():
    x = tf.constant(np.random.default_rng(2).normal(size=(4, 6, 5)), tf.float32)
    for kwargs in ({"rate": 0.3}, {"rate": 0.5, "noise_shape": (None, 1, 5)}):
        ours, stock = custom_layers.Dropout(seed=11, **kwargs), keras.layers.Dropout(seed=11, **kwargs)
        grads = []
        for layer in (ours, stock):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            grads.append((y.numpy(), tape.gradient(y, x, output_gradients=2 * tf.ones_like(y)).numpy()))
        np.testing.assert_array_equal(grads[0][0], grads[1][0])
        np.testing.assert_array_equal(grads[0][1], grads[1][1])
        dropped = grads[0][0] == 0
        assert 0 < dropped.mean() < 1 and np.all(grads[0][1][dropped] == 0)
        assert ours.get_config() == {**stock.get_config(), "name": ours.get_config()["name"]}
    layer = custom_layers.Dropout(0.5)
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(custom_layers.Dropout(1.0)(x, training=True), np.zeros(x.shape))


def test_dropout_reference_matches_op():
    rng = np.random.default_rng(3)
    x, keep, dout = rng.normal(size=(3, 4)), rng.uniform(size=(3, 4)) > 0.4, rng.normal(size=(3, 4))
    out, cache = inverted_dropout.dropout_forward(x, keep, 0.4)
    (dx,) = tf_gradients(lambda t: inverted_dropout.dropout(t, tf.constant(keep), 0.4), (x,), dout)
    np.testing.assert_allclose(dx, inverted_dropout.dropout_backward(dout, cache), rtol=1e-15)
    np.testing.assert_allclose(inverted_dropout.dropout(tf.constant(x), tf.constant(keep), 0.4), out)


def _pooling_model(layers):
    inputs = keras.Input((8, 8, 3))
    # A trainable layer first, so that the weight gradient flows through every pooling layer.
    x = custom_layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Dropout(0.2)(x)
    a = layers.GlobalAveragePooling2D()(x)
    b = layers.GlobalMaxPooling2D()(x)
    outputs = custom_layers.Dense(2, activation="softmax")(keras.layers.Concatenate()([a, b]))
    return keras.Model(inputs, outputs)


def test_network_of_new_layers_has_no_tensorflow_pooling_gradients():
    x, y = tf.zeros([2, 8, 8, 3]), tf.zeros([2], tf.int32)
    types = gradient_op_types(_pooling_model(custom_layers), x, y)
    assert "AvgPool" in types
    assert not types & {"AvgPoolGrad", "_MklAvgPoolGrad"}
    # The check can fail: with stock layers TensorFlow's pooling gradient is there.
    assert gradient_op_types(_pooling_model(keras.layers), x, y) & {"AvgPoolGrad", "_MklAvgPoolGrad"}
