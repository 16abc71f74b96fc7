"""GroupNormalization: the closed-form backward over each group equals stock (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import ops
from custom_layers.gradcheck import rel_error
from custom_layers.ops import group_normalization as gn
from tests.graph_walk import tf_generated_gradients
from tests.tape import (assert_mixed_bfloat16_matches, assert_normalization_matches,
                        layer_step, normalization_twins, penalty_gradient)

CONFIGS = [dict(groups=3), dict(groups=6, axis=1), dict(groups=1, center=False),
           dict(groups=2, scale=False), dict(groups=6, axis=-1, scale=False, center=False)]


@pytest.mark.parametrize("config", CONFIGS, ids=["last", "axis-1", "one-group-no-beta",
                                                 "no-gamma", "instance-norm-bare"])
def test_group_norm_equals_stock_and_the_numpy_reference(float64, config):
    rng = np.random.default_rng(0)
    shape = (3, 6, 5, 4) if config.get("axis") == 1 else (3, 4, 5, 6)
    x = tf.constant(rng.normal(size=shape) * 2 + 1)
    dy = tf.constant(rng.normal(size=shape))
    layers, (gamma, beta) = normalization_twins("GroupNormalization", x.shape, **config)
    ours, stock = (layer_step(layer, x, dy) for layer in layers)
    out, cache = gn.group_norm_forward(x.numpy(), gamma, beta, config["groups"],
                                       config.get("axis", -1))
    assert_normalization_matches(ours, stock, out, gn.group_norm_backward(dy.numpy(), cache),
                                 1e-13)


def test_mixed_bfloat16_keeps_float32_weights_and_stock_values():
    assert_mixed_bfloat16_matches("GroupNormalization", (2, 7, 8), groups=4)


def test_unknown_batch_and_spatial_sizes_give_stock_values():
    x = tf.constant(np.random.default_rng(3).normal(size=(2, 7, 8)), tf.float32)
    ours, stock = (L.GroupNormalization(groups=4) for L in (custom_layers, keras.layers))
    step = tf.function(lambda t: ours(t), input_signature=[tf.TensorSpec([None, None, 8])])
    np.testing.assert_array_equal(step(x), stock(x))


def test_group_norm_backward_is_hand_written_and_swapped_in():
    stock = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(8, 3),
                              keras.layers.GroupNormalization(groups=4),
                              keras.layers.Activation("relu"), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model = custom_layers.swap_layers(stock)
    assert isinstance(model.layers[1], custom_layers.GroupNormalization)
    generated = tf_generated_gradients(model, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 6, 6, 3], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated


def test_second_order_gradient_equals_autodiff_of_the_plain_formula(float64):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 3, 6)))
    gamma, beta = (tf.constant(rng.normal(size=6)) for _ in range(2))
    dy = tf.constant(rng.normal(size=x.shape))

    def plain(t):
        g = tf.reshape(t, [2, 3, 2, 3])
        mean = tf.reduce_mean(g, [1, 3], keepdims=True)
        var = tf.reduce_mean(tf.square(g - mean), [1, 3], keepdims=True)
        return tf.reshape((g - mean) * tf.math.rsqrt(var + 1e-3), [2, 3, 6]) * gamma + beta

    results = [penalty_gradient(f, x, dy)
               for f in (lambda t: ops.group_norm(t, gamma, beta, 2), plain)]
    assert rel_error(*results) <= 1e-12


@pytest.mark.parametrize("groups,axis,message", [
    (4, -1, "groups=4 must divide the 6 channels"), (0, -1, "groups=0"),
    (2, 0, "axis 0 is not a non-batch axis"), (2, 3, "axis 3 is not a non-batch axis"),
])
def test_bad_groups_and_axes_are_refused_by_name(groups, axis, message):
    with pytest.raises(ValueError, match=message):
        ops.group_norm(tf.zeros([2, 3, 6]), None, None, groups, axis)
