"""Keras's activations and activation layers, hand-written: equal to stock at every kink."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import ops
from custom_layers.gradcheck import rel_error
from custom_layers.ops import normalized_exponential as softmax_ops
from custom_layers.ops import parametric_relu, pointwise
from tests.graph_walk import tf_generated_gradients
from tests.tape import value_and_grad as _value_and_grad

# Every rule once (aliases share their rule), and the arguments Keras takes.
CASES = [(name, {}) for name, rule in pointwise.RULES.items() if rule.keras_fn.__name__ == name]
CASES += [("elu", {"alpha": 0.5}), ("celu", {"alpha": 2.0})]
KINKS = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]


def _inputs(dtype=np.float64):
    rng = np.random.default_rng(0)
    # Beside each kink a point just above it (not a denormal: TensorFlow flushes those to 0).
    x = np.concatenate([rng.normal(size=50) * 3, KINKS, np.add(KINKS, 2.0 ** -30)])[None]
    return x.astype(dtype), rng.normal(size=x.shape).astype(dtype)


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_every_rule_equals_stock_autodiff_and_the_numpy_reference(name, params):
    x, dy = _inputs()
    stock = _value_and_grad(lambda t: pointwise.RULES[name].keras_fn(t, **params), x, dy)
    ours = _value_and_grad(lambda t: ops.activation(name, t, **params), x, dy)
    np.testing.assert_array_equal(ours[0], stock[0])
    # The kinks (0, ±½, ±1, ±3 exactly) are in x: a different subgradient would show.
    assert rel_error(ours[1], stock[1]) <= 1e-15
    numpy_impl = _value_and_grad(lambda t: ops.activation(name, t, "numpy", **params), x, dy)
    out, cache = pointwise.pointwise_forward(name, x, **params)
    for value, grad in (numpy_impl, (out, pointwise.pointwise_backward(name, dy, cache))):
        assert rel_error(value, stock[0]) <= 1e-14
        assert rel_error(grad, stock[1]) <= 1e-14


@pytest.mark.parametrize("name", ["silu", "hard_silu", "sigmoid", "tanh", "elu", "selu", "mish"])
def test_bfloat16_gradients_are_stocks_within_bfloat16_rounding(name):
    x, dy = _inputs(np.float32)
    x, dy = tf.cast(x, tf.bfloat16), tf.cast(dy, tf.bfloat16)
    grads = []
    for f in (lambda t: ops.activation(name, t), pointwise.RULES[name].keras_fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
        grad = tape.gradient(y, x, dy)
        assert y.dtype == grad.dtype == tf.bfloat16
        grads.append(grad.numpy().astype(np.float32))
    assert rel_error(*grads) <= 2 ** -7


def test_unknown_rule_and_argument_are_refused_by_name():
    with pytest.raises(ValueError, match="no hand-written rule for activation 'swoosh'"):
        ops.activation("swoosh", tf.zeros([2]))
    with pytest.raises(ValueError, match="'tanh' takes no arguments. Received: \\['alpha'\\]"):
        ops.activation("tanh", tf.zeros([2]), alpha=0.5)


@pytest.mark.parametrize("axis", [-1, 1, (1, 2), None])
def test_softmax_and_log_softmax_over_any_axes_equal_stock(float64, axis):
    rng = np.random.default_rng(1)
    z, dy = rng.normal(size=(2, 3, 4)) * 3, rng.normal(size=(2, 3, 4))
    ours = _value_and_grad(lambda t: ops.softmax(t, axis), z, dy)
    stock = _value_and_grad(keras.layers.Softmax(axis=axis) if axis is not None
                            else lambda t: keras.activations.softmax(t, axis=None), z, dy)
    for a, b in zip(ours, stock):
        assert rel_error(a, b) <= 1e-15
    y, cache = softmax_ops.softmax_forward(z, axis)
    assert rel_error(softmax_ops.softmax_backward(dy, cache), stock[1]) <= 1e-14
    if not isinstance(axis, tuple):
        ours = _value_and_grad(lambda t: ops.log_softmax(t, axis), z, dy)
        stock = _value_and_grad(lambda t: keras.activations.log_softmax(t, axis), z, dy)
        for a, b in zip(ours, stock):
            assert rel_error(a, b) <= 1e-15
        y, cache = softmax_ops.log_softmax_forward(z, axis)
        assert rel_error(softmax_ops.log_softmax_backward(dy, cache), stock[1]) <= 1e-14


def test_softmax_layer_masks_by_hand_like_stock(float64):
    rng = np.random.default_rng(2)
    z, dy = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    ours = _value_and_grad(lambda t: custom_layers.Softmax()(t, mask=mask), z, dy)
    stock = _value_and_grad(lambda t: keras.layers.Softmax()(t, mask=mask), z, dy)
    for a, b in zip(ours, stock):
        np.testing.assert_array_equal(a, b)
    assert not ours[1][~mask].any()
    with pytest.raises(ValueError, match="must be broadcastable"):
        custom_layers.Softmax()(z, mask=np.ones((3, 2), bool))


@pytest.mark.parametrize("shared_axes", [None, [1], [1, 2]])
def test_prelu_layer_equals_stock_with_its_alpha_gradient(float64, shared_axes):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=(2, 3, 4)), np.zeros((1, 3, 4))])  # 0 is a kink
    dy = rng.normal(size=x.shape)
    layers = [L.PReLU(alpha_initializer="random_normal", shared_axes=shared_axes)
              for L in (custom_layers, keras.layers)]
    for layer in layers:
        layer.build(x.shape)
    layers[0].set_weights(layers[1].get_weights())
    results = []
    for layer in layers:
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt)
        results.append([y, *tape.gradient(y, [xt, layer.alpha], tf.constant(dy))])
    for a, b in zip(*results):
        assert rel_error(a.numpy(), b.numpy()) <= 1e-15
    out, cache = parametric_relu.prelu_forward(x, layers[1].alpha.numpy())
    for a, b in zip(parametric_relu.prelu_backward(dy, cache), results[1][1:]):
        assert rel_error(a, b.numpy()) <= 1e-14


def test_prelu_alpha_that_does_not_broadcast_is_refused():
    with pytest.raises(ValueError, match="does not broadcast"):
        ops.prelu(tf.zeros([2, 3, 4]), tf.zeros([3, 5]))


@pytest.mark.parametrize("make", [lambda L: L.LeakyReLU(0.1), lambda L: L.ELU(0.7),
                                  lambda L: L.Activation("swish"),
                                  lambda L: L.Activation("log_softmax")],
                         ids=["LeakyReLU", "ELU", "Activation-swish", "Activation-log_softmax"])
def test_activation_layers_equal_stock(float64, make):
    x, dy = _inputs()
    ours = _value_and_grad(make(custom_layers), x, dy)
    stock = _value_and_grad(make(keras.layers), x, dy)
    for a, b in zip(ours, stock):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["silu", "hard_silu", "selu", "sigmoid"])
def test_activation_arguments_of_dense_and_conv_are_hand_written(float64, activation):
    rng = np.random.default_rng(4)
    x, dy = rng.normal(size=(2, 5, 5, 3)), rng.normal(size=(2, 5, 5, 4))
    results = []
    for L in (custom_layers, keras.layers):
        keras.utils.set_random_seed(5)
        results.append(_value_and_grad(L.Conv2D(4, 3, padding="same", activation=activation),
                                       x, dy))
    for a, b in zip(*results):
        assert rel_error(a, b) <= 1e-14


def test_swap_layers_leaves_no_activation_to_tensorflow():
    inputs = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(4, 3, activation="swish")(inputs)
    h = keras.layers.Activation("hard_silu")(keras.layers.PReLU(shared_axes=[1, 2])(h))
    h = keras.layers.LeakyReLU()(keras.layers.ELU()(h))
    h = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, keras.layers.Softmax()(h))
    swapped = custom_layers.swap_layers(model)
    assert swapped.stock_layer_names == []
    generated = tf_generated_gradients(swapped, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 6, 6, 3], num_classes=5)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated


@pytest.mark.filterwarnings("ignore:The object being serialized includes a `lambda`")
def test_swap_layers_refuses_a_users_activation_function_unless_kept():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Activation(lambda t: t * 2, name="twice")(inputs))
    with pytest.raises(ValueError, match="layer 'twice' \\(Activation\\) has no hand-written "
                                         "twin for its configuration"):
        custom_layers.swap_layers(model)
    kept = custom_layers.swap_layers(model, keep_unsupported=True)
    assert "twice" in kept.stock_layer_names


@pytest.mark.parametrize("name,params", CASES[::2] + [("elu", {"alpha": 0.5})],
                         ids=[f"{n}{p or ''}" for n, p in CASES[::2] + [("elu", {"alpha": 0.5})]])
def test_second_order_gradients_equal_stocks(name, params):
    # Every other rule: the backward is plain TF arithmetic, as stock's, in each.
    x, dy = _inputs()
    x = x[:, :50]  # the kinks carry no curvature
    results = []
    for f in (lambda t: ops.activation(name, t, **params),
              lambda t: pointwise.RULES[name].keras_fn(t, **params)):
        xt = tf.constant(x)
        with tf.GradientTape() as outer:
            outer.watch(xt)
            with tf.GradientTape() as inner:
                inner.watch(xt)
                y = f(xt)
            penalty = tf.reduce_sum(inner.gradient(y, xt, tf.constant(dy[:, :50])) ** 2)
        results.append(outer.gradient(penalty, xt, unconnected_gradients="zero").numpy())
    assert rel_error(*results) <= 1e-13
