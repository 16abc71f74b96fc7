"""GELU, ReLU with its arguments, Activation, Rescaling and the ResNet shortcut: equal to
stock (float64), hand-written."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import ops
from custom_layers.gradcheck import rel_error
from custom_layers.ops import activations, rescaling
from custom_layers.ops.zero_pad_shortcut import (zero_pad_shortcut_backward,
                                                 zero_pad_shortcut_forward)
from tests.graph_walk import tf_generated_gradients
from tests.tape import value_and_grad as _value_and_grad


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("impl", ["tf", "numpy"])
def test_gelu_equals_keras_and_its_hand_written_gradient_equals_autodiff(approximate, impl):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 7)) * 3
    dy = rng.normal(size=x.shape)
    ours = _value_and_grad(lambda t: ops.gelu(t, approximate, impl=impl), x, dy)
    stock = _value_and_grad(lambda t: keras.activations.gelu(t, approximate=approximate), x, dy)
    # tf.nn.gelu's float64 constants are rounded near float32 (~1e-9 relative).
    assert rel_error(ours[0], stock[0]) <= 1e-8
    assert rel_error(ours[1], stock[1]) <= 1e-8
    out, cache = activations.gelu_forward(x, approximate)
    assert rel_error(activations.gelu_backward(dy, cache), ours[1]) <= 1e-8


@pytest.mark.parametrize("activation", ["gelu", "relu", "softmax", "linear"])
def test_activation_layer_equals_stock_in_float64(float64, activation):
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    ours = _value_and_grad(custom_layers.Activation(activation), x, dy)
    stock = _value_and_grad(keras.layers.Activation(activation), x, dy)
    for a, b in zip(ours, stock):
        assert rel_error(a, b) <= 1e-8


def test_activation_layer_refuses_activations_without_a_hand_written_backward():
    with pytest.raises(ValueError, match="hand-written backwards for linear, relu, relu6, "
                                         "leaky_relu, gelu, softmax, log_softmax, glu, "
                                         "sigmoid"):
        custom_layers.Activation("sparsemax")
    with pytest.raises(ValueError, match="hand-written backwards"):
        custom_layers.Activation(lambda x: x * 2)


@pytest.mark.parametrize("kwargs", [dict(axis=-1, mean=[1.0, -2.0, 0.5, 3.0],
                                         variance=[4.0, 0.25, 1.0, 0.0]),
                                    dict(axis=(1, -1), invert=True), dict(axis=None)])
def test_normalization_equals_stock_including_invert_and_adapt(float64, kwargs):
    rng = np.random.default_rng(3)
    x, dy = rng.normal(size=(5, 3, 4)) * 3 + 1, rng.normal(size=(5, 3, 4))
    layers = [L.Normalization(**kwargs) for L in (custom_layers, keras.layers)]
    if "mean" not in kwargs:
        for layer in layers:
            layer.adapt(x)
    ours, stock = (_value_and_grad(layer, x, dy) for layer in layers)
    np.testing.assert_array_equal(ours[0], stock[0])
    assert rel_error(ours[1], stock[1]) <= 1e-14
    out, cache = rescaling.standardize_forward(
        x, layers[1].mean.numpy(), layers[1].variance.numpy(), kwargs.get("invert", False),
        keras.config.epsilon())
    assert rel_error(out, stock[0]) <= 1e-14
    assert rel_error(rescaling.rescale_backward(dy, cache), stock[1]) <= 1e-14


def test_rescaling_equals_stock_including_broadcast_and_channels_first(float64):
    rng = np.random.default_rng(2)
    x, dy = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 3, 4, 4))
    for kwargs in (dict(scale=1 / 255), dict(scale=[0.5, 2.0, 3.0, 4.0], offset=0.5)):
        ours = _value_and_grad(custom_layers.Rescaling(**kwargs), x, dy)
        stock = _value_and_grad(keras.layers.Rescaling(**kwargs), x, dy)
        for a, b in zip(ours, stock):
            assert rel_error(a, b) <= 1e-12
    keras.config.set_image_data_format("channels_first")
    try:
        kwargs = dict(scale=[0.5, 2.0, 3.0])
        ours = _value_and_grad(custom_layers.Rescaling(**kwargs), x[:, :3], dy[:, :3])
        stock = _value_and_grad(keras.layers.Rescaling(**kwargs), x[:, :3], dy[:, :3])
    finally:
        keras.config.set_image_data_format("channels_last")
    for a, b in zip(ours, stock):
        assert rel_error(a, b) <= 1e-12


def test_rescale_gradient_sums_over_axes_the_constants_broadcast():
    x, dy = np.ones((1, 3)), np.arange(6.0).reshape(2, 3)
    value, grad = _value_and_grad(lambda t: ops.rescale(t, np.full((2, 1), 2.0)), x, dy)
    assert value.shape == (2, 3)
    np.testing.assert_array_equal(grad, [[6.0, 10.0, 14.0]])


@pytest.mark.parametrize("shape,filters,stride", [((2, 5, 6, 3), 5, 2), ((1, 4, 4, 2), 2, 1),
                                                  ((1, 7, 7, 4), 8, 3)])
def test_zero_pad_shortcut_matches_numpy_and_slicing_autodiff(shape, filters, stride):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape)
    out, cache = zero_pad_shortcut_forward(x, filters, stride)
    dy = rng.normal(size=out.shape)
    value, grad = _value_and_grad(lambda t: custom_layers.ZeroPadShortcut(filters, stride)(t), x, dy)
    np.testing.assert_allclose(value, out, rtol=1e-6)  # the layer computes in float32
    np.testing.assert_allclose(grad, zero_pad_shortcut_backward(dy, cache), rtol=1e-6)
    stock = _value_and_grad(lambda t: tf.pad(t[:, ::stride, ::stride, :],
                                             [[0, 0]] * 3 + [[0, filters - shape[3]]]), x, dy)
    np.testing.assert_allclose(grad, stock[1], rtol=1e-6)


def test_zero_pad_shortcut_refuses_to_shrink():
    with pytest.raises(ValueError, match="cannot shrink 4 channels"):
        custom_layers.ZeroPadShortcut(2, 1)(tf.zeros([1, 3, 3, 4]))
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        custom_layers.ZeroPadShortcut(4, 0)


# (negative_slope, max_value, threshold): ReLU6, leaky, clipped, thresholded, and all three.
RELU_ARGUMENTS = [(0.0, 6.0, 0.0), (0.2, None, 0.0), (0.0, 5.0, 0.0), (0.0, None, 1.0),
                  (0.3, 4.0, 0.5), (0.1, 6.0, 0.0), (0.0, 6.0, 2.0), (0.5, None, 1.5)]


def _relu_inputs(max_value, threshold):
    """Random values plus every kink: 0, the threshold and the clip, exactly."""
    kinks = [0.0, threshold, 6.0] + ([max_value] if max_value is not None else [])
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(size=40) * 4, kinks, np.negative(kinks)])[None]


@pytest.mark.parametrize("arguments", RELU_ARGUMENTS)
@pytest.mark.parametrize("impl", ["tf", "numpy"])
def test_relu_with_keras_arguments_equals_stock_autodiff_at_every_kink(arguments, impl):
    x = _relu_inputs(*arguments[1:])
    dy = np.random.default_rng(4).normal(size=x.shape)
    ours = _value_and_grad(lambda t: ops.relu_general(t, *arguments, impl=impl), x, dy)
    stock = _value_and_grad(lambda t: keras.activations.relu(t, *arguments), x, dy)
    if impl == "tf":
        np.testing.assert_array_equal(ours[0], stock[0])
        np.testing.assert_array_equal(ours[1], stock[1])
    # The reference's leaky slope is 0.2 itself, stock's kernel's 0.2 in float32.
    for a, b in zip(ours, stock):
        assert rel_error(a, b) <= 1e-7
    out, cache = activations.relu_general_forward(x, *arguments)
    assert rel_error(out, stock[0]) <= 1e-7
    assert rel_error(activations.relu_general_backward(dy, cache), stock[1]) <= 1e-7


def test_relu_constants_are_compared_in_the_inputs_dtype_as_keras_does():
    # 0.1 and 0.7 are not representable in bfloat16: inputs on both sides of the
    # rounded constants must take stock's branch.
    x = tf.cast(tf.linspace(-1.0, 1.0, 4001), tf.bfloat16)[None]
    dy = tf.ones_like(x)
    for arguments in ((0.3, 0.7, 0.1), (0.0, None, 0.1)):
        grads = []
        for f in (ops.relu_general, keras.activations.relu):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = f(x, *arguments)
            grads.append(tape.gradient(y, x, dy).numpy().astype(np.float32))
        np.testing.assert_array_equal(*grads)


@pytest.mark.parametrize("kwargs", [dict(max_value=6.0), dict(negative_slope=0.3),
                                    dict(threshold=0.5, max_value=2.0, negative_slope=0.1)])
def test_relu_layer_with_arguments_equals_stock_and_backpropagates_by_hand(float64, kwargs):
    rng = np.random.default_rng(5)
    x, dy = rng.normal(size=(3, 8)) * 4, rng.normal(size=(3, 8))
    ours = _value_and_grad(custom_layers.ReLU(**kwargs), x, dy)
    stock = _value_and_grad(keras.layers.ReLU(**kwargs), x, dy)
    for a, b in zip(ours, stock):
        np.testing.assert_array_equal(a, b)
    model = keras.Sequential([keras.Input((8,)), custom_layers.Dense(4),
                              custom_layers.ReLU(**kwargs), custom_layers.Dense(3, "softmax")])
    generated = tf_generated_gradients(model, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 8], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated


@pytest.mark.parametrize("activation", ["relu6", "leaky_relu"])
def test_relu6_and_leaky_relu_activations_equal_stock(float64, activation):
    x = _relu_inputs(6.0, 0.0)
    dy = np.random.default_rng(6).normal(size=x.shape)
    dense = dict(units=x.shape[1], activation=activation, kernel_initializer="identity")
    for ours_layer, stock_layer in ((custom_layers.Activation(activation),
                                     keras.layers.Activation(activation)),
                                    (custom_layers.Dense(**dense), keras.layers.Dense(**dense))):
        ours = _value_and_grad(ours_layer, x, dy)
        stock = _value_and_grad(stock_layer, x, dy)
        for a, b in zip(ours, stock):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("axis", [-1, 0])
def test_glu_equals_stock_and_its_numpy_reference(float64, axis):
    from custom_layers.ops import gated_linear_unit

    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 8)) * 2
    out, cache = gated_linear_unit.glu_forward(x, axis)
    dy = rng.normal(size=out.shape)
    ours = _value_and_grad(lambda t: ops.glu(t, axis), x, dy)
    stock = _value_and_grad(lambda t: keras.activations.glu(t, axis=axis), x, dy)
    np.testing.assert_array_equal(ours[0], stock[0])
    assert rel_error(ours[1], stock[1]) <= 1e-13
    assert rel_error(out, stock[0]) <= 1e-13
    assert rel_error(gated_linear_unit.glu_backward(dy, cache), ours[1]) <= 1e-13
    if axis == -1:  # the Activation layer and a layer's activation argument run the same op
        layer = _value_and_grad(custom_layers.Activation("glu"), x, dy)
        assert rel_error(layer[1], stock[1]) <= 1e-13
        assert custom_layers.Dense(8, activation="glu")(x).shape == out.shape


def test_keras_sparsemax_is_refused_because_its_outputs_do_not_sum_to_one():
    # Stock's tau sums the cumulative sums: [0.1, 0.2, 0.3] should project to
    # [0.233, 0.333, 0.433]. A twin would copy the bug or differ from stock; when
    # this fails, Keras has fixed it and the twin is due.
    y = keras.activations.sparsemax(tf.constant([[0.1, 0.2, 0.3]])).numpy()
    assert abs(y.sum() - 1) > 0.5
    with pytest.raises(ValueError, match="hand-written backwards"):
        custom_layers.Activation("sparsemax")


def test_glu_refuses_an_odd_axis_by_name():
    with pytest.raises(ValueError, match="size must be known and even"):
        ops.glu(tf.zeros([2, 5]))
