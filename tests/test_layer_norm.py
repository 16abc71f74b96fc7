"""LayerNormalization: the closed-form backward over any axes equals stock (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import ops
from custom_layers.gradcheck import rel_error
from custom_layers.ops import layer_normalization as ln
from tests.graph_walk import tf_generated_gradients

CONFIGS = [dict(), dict(axis=(1, 3)), dict(axis=[-2, -1], center=False), dict(scale=False),
           dict(rms_scaling=True)]


def _step(layer, x, dy):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    return [y, *tape.gradient(y, [x, *layer.trainable_weights], dy)]


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("config", CONFIGS, ids=["last", "axes-1-3", "two-axes-no-beta",
                                                 "no-gamma", "rms_scaling"])
def test_layer_norm_equals_stock_and_the_numpy_reference(float64, config):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 4, 5, 6)) * 2 + 1)
    dy = tf.constant(rng.normal(size=x.shape))
    layers = [L.LayerNormalization(gamma_initializer="random_normal",
                                   beta_initializer="random_normal", **config)
              for L in (custom_layers, keras.layers)]
    for layer in layers:
        layer.build(x.shape)
    layers[0].set_weights(layers[1].get_weights())
    ours, stock = (_step(layer, x, dy) for layer in layers)
    np.testing.assert_array_equal(ours[0], stock[0])
    for a, b in zip(ours[1:], stock[1:]):
        assert rel_error(a.numpy(), b.numpy()) <= 1e-14
    gamma, beta = (getattr(layers[1], n) for n in ("gamma", "beta"))
    out, cache = ln.layer_norm_forward(x.numpy(), None if gamma is None else gamma.numpy(),
                                       None if beta is None else beta.numpy(), layers[1].axis,
                                       1e-3, config.get("rms_scaling", False))
    reference = [g for g in ln.layer_norm_backward(dy.numpy(), cache) if g is not None]
    assert rel_error(out, stock[0].numpy()) <= 1e-14
    for a, b in zip(reference, stock[1:]):
        assert rel_error(a, b.numpy()) <= 1e-14


def test_mixed_bfloat16_keeps_float32_weights_and_stock_values():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        rng = np.random.default_rng(1)
        x = tf.constant(rng.normal(size=(4, 8, 16)), tf.float32)
        dy = tf.constant(rng.normal(size=(4, 8, 16)), tf.bfloat16)
        layers = [L.LayerNormalization() for L in (custom_layers, keras.layers)]
        ours, stock = (_step(layer, x, dy) for layer in layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ours[0].dtype == tf.bfloat16 and ours[2].dtype == tf.float32
    np.testing.assert_array_equal(ours[0], stock[0])
    for a, b in zip(ours[1:], stock[1:]):
        assert rel_error(a.numpy().astype(np.float32), b.numpy().astype(np.float32)) <= 2 ** -7


def test_layer_norm_backward_is_hand_written():
    model = keras.Sequential([keras.Input((6, 8)), custom_layers.Dense(8),
                              custom_layers.LayerNormalization(), custom_layers.Activation("gelu"),
                              keras.layers.Flatten(), custom_layers.Dense(3)])
    generated = tf_generated_gradients(model, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 6, 8], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated


def test_second_order_gradient_equals_autodiff_of_the_plain_formula():
    # Stock's own second derivative is off: tf.nn.moments takes the variance
    # around stop_gradient(mean). The plain formula's autodiff is the truth.
    rng = np.random.default_rng(2)
    x, gamma, beta = (tf.constant(rng.normal(size=s)) for s in ((3, 7), (7,), (7,)))
    dy = tf.constant(rng.normal(size=(3, 7)))

    def plain(t):
        mean = tf.reduce_mean(t, -1, keepdims=True)
        var = tf.reduce_mean(tf.square(t - mean), -1, keepdims=True)
        return (t - mean) * tf.math.rsqrt(var + 1e-3) * gamma + beta

    results = []
    for f in (lambda t: ops.layer_norm(t, gamma, beta), plain):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = f(x)
            penalty = tf.reduce_sum(inner.gradient(y, x, dy) ** 2)
        results.append(outer.gradient(penalty, x).numpy())
    assert rel_error(*results) <= 1e-13


def test_bad_axes_are_refused_by_name():
    with pytest.raises(ValueError, match="axis 4 is not an axis of an input of rank 3"):
        ops.layer_norm(tf.zeros([2, 3, 4]), None, None, axis=4)
    with pytest.raises(ValueError, match="axes repeat"):
        ops.layer_norm(tf.zeros([2, 3, 4]), None, None, axis=(2, -1))
