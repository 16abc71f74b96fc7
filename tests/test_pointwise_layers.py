"""GELU, Activation, Rescaling and the ResNet shortcut: equal to stock (float64), hand-written."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import ops
from custom_layers.gradcheck import rel_error
from custom_layers.ops import activations
from custom_layers.ops.zero_pad_shortcut import (zero_pad_shortcut_backward,
                                                 zero_pad_shortcut_forward)


def _value_and_grad(f, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    return y.numpy(), tape.gradient(y, x, tf.constant(dy)).numpy()


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
    with pytest.raises(ValueError, match="hand-written backwards for linear, relu, gelu, softmax"):
        custom_layers.Activation("tanh")
    with pytest.raises(ValueError, match="hand-written backwards"):
        custom_layers.Activation(lambda x: x * 2)


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
