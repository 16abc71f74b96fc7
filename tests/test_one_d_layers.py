"""Conv1D, DepthwiseConv1D, SeparableConv1D, the 1-D poolings: the 2-D ops at height 1, as stock."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from tests.graph_walk import tf_generated_gradients


def _step(layer, x, mask=None):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x) if mask is None else layer(x, mask=mask)
    return [y, *tape.gradient(y, [x, *layer.trainable_weights], tf.sin(y) + 1)]


def _equal_to_stock(make, x, tolerance=1e-14, mask=None):
    results = []
    for L in (custom_layers, keras.layers):
        keras.utils.set_random_seed(1)
        results.append(_step(make(L), x, mask))
    for a, b in zip(*results):
        assert rel_error(a.numpy(), b.numpy()) <= tolerance


X = np.random.default_rng(0).normal(size=(2, 11, 4))


@pytest.mark.parametrize("config", [
    dict(filters=5, kernel_size=3), dict(filters=4, kernel_size=3, padding="causal",
                                         dilation_rate=2, activation="relu"),
    dict(filters=6, kernel_size=2, strides=2, padding="same", groups=2, activation="silu"),
], ids=["valid", "causal-dilated-relu", "strided-grouped-silu"])
def test_conv1d_equals_stock(float64, config):
    _equal_to_stock(lambda L: L.Conv1D(bias_initializer="random_normal", **config), X)


@pytest.mark.parametrize("config", [
    dict(kernel_size=3, depth_multiplier=2), dict(kernel_size=3, strides=2, padding="same"),
    dict(kernel_size=2, dilation_rate=3, padding="same", activation="relu"),
    dict(kernel_size=4, strides=3, depth_multiplier=3, use_bias=False),
], ids=["multiplier", "strided-same", "dilated-relu", "stride-3-no-bias"])
@pytest.mark.parametrize("kind", ["DepthwiseConv1D", "SeparableConv1D"])
def test_depthwise_and_separable_conv1d_equal_stock(float64, kind, config):
    if kind == "SeparableConv1D":
        config = dict(config, filters=5)
    _equal_to_stock(lambda L: getattr(L, kind)(bias_initializer="random_normal", **config), X)


def test_conv1d_channels_first_equals_channels_last(float64):
    # Stock's channels_first Conv1D does not run on a CPU (NCHW Conv2D); compare with NWC.
    layers = [custom_layers.Conv1D(3, 3, data_format=f, bias_initializer="random_normal")
              for f in ("channels_first", "channels_last")]
    x = tf.constant(X)
    layers[0].build((2, 4, 11))
    layers[1].build((2, 11, 4))
    layers[1].set_weights(layers[0].get_weights())
    first = layers[0](tf.transpose(x, [0, 2, 1]))
    np.testing.assert_allclose(tf.transpose(first, [0, 2, 1]), layers[1](x), rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda L: L.MaxPooling1D(2), lambda L: L.MaxPooling1D(3, 2, padding="same"),
    lambda L: L.AveragePooling1D(3, 2, padding="same"), lambda L: L.GlobalAveragePooling1D(),
    lambda L: L.GlobalMaxPooling1D(keepdims=True),
    lambda L: L.GlobalAveragePooling1D(data_format="channels_first"),
], ids=["max", "max-same", "avg-same", "global-avg", "global-max-keepdims", "global-avg-cf"])
def test_1d_poolings_equal_stock(float64, make):
    _equal_to_stock(make, np.round(X * 2) / 2)  # ties for the maxima


def test_masked_global_average_pooling_equals_stock(float64):
    mask = np.array([[1] * 7 + [0] * 4, [1] * 11], bool)
    _equal_to_stock(lambda L: L.GlobalAveragePooling1D(), X, mask=mask)


def test_a_1d_cnn_backpropagates_only_through_hand_written_ops():
    model = keras.Sequential([
        keras.Input((16, 3)), keras.layers.Conv1D(8, 3, padding="causal", activation="relu"),
        keras.layers.MaxPooling1D(2), keras.layers.Conv1D(8, 3, activation="gelu"),
        keras.layers.AveragePooling1D(2), keras.layers.DepthwiseConv1D(2, strides=2),
        keras.layers.SeparableConv1D(6, 1, activation="relu"), keras.layers.GlobalMaxPooling1D(),
        keras.layers.Dense(3)])
    swapped = custom_layers.swap_layers(model)
    generated = tf_generated_gradients(swapped, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 16, 3], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated
