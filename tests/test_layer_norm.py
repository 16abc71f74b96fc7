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
from tests.tape import (assert_mixed_bfloat16_matches, assert_normalization_matches,
                        layer_step, normalization_twins, penalty_gradient)

CONFIGS = [dict(), dict(axis=(1, 3)), dict(axis=[-2, -1], center=False), dict(scale=False),
           dict(rms_scaling=True)]


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("config", CONFIGS, ids=["last", "axes-1-3", "two-axes-no-beta",
                                                 "no-gamma", "rms_scaling"])
def test_layer_norm_equals_stock_and_the_numpy_reference(float64, config):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 4, 5, 6)) * 2 + 1)
    dy = tf.constant(rng.normal(size=x.shape))
    layers, (gamma, beta) = normalization_twins("LayerNormalization", x.shape, **config)
    ours, stock = (layer_step(layer, x, dy) for layer in layers)
    out, cache = ln.layer_norm_forward(x.numpy(), gamma, beta, layers[1].axis, 1e-3,
                                       config.get("rms_scaling", False))
    assert_normalization_matches(ours, stock, out, ln.layer_norm_backward(dy.numpy(), cache),
                                 1e-14)


def test_mixed_bfloat16_keeps_float32_weights_and_stock_values():
    assert_mixed_bfloat16_matches("LayerNormalization", (4, 8, 16))


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

    results = [penalty_gradient(f, x, dy)
               for f in (lambda t: ops.layer_norm(t, gamma, beta), plain)]
    assert rel_error(*results) <= 1e-13


def test_bad_axes_are_refused_by_name():
    with pytest.raises(ValueError, match="axis 4 is not an axis of an input of rank 3"):
        ops.layer_norm(tf.zeros([2, 3, 4]), None, None, axis=4)
    with pytest.raises(ValueError, match="axes repeat"):
        ops.layer_norm(tf.zeros([2, 3, 4]), None, None, axis=(2, -1))
