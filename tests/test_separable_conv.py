"""SeparableConv2D: depthwise and pointwise both hand-written, equal to stock (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from tests.graph_walk import tf_generated_gradients

CONFIGS = [
    dict(filters=5, kernel_size=3),
    dict(filters=4, kernel_size=3, strides=2, padding="same", depth_multiplier=2,
         activation="relu"),
    dict(filters=4, kernel_size=(3, 2), dilation_rate=2, padding="same", activation="swish",
         use_bias=False),
    # 4 filters: with as many filters as input columns (3) stock's channels_first
    # bias lands on the wrong axis here (TF 2.21, Keras 3.15); ours does not.
    dict(filters=4, kernel_size=3, padding="same", data_format="channels_first"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["plain", "strided-x2-relu", "dilated-swish",
                                                 "channels_first"])
def test_separable_conv2d_equals_stock_in_every_gradient(float64, config):
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 3)))
    results = []
    for L in (custom_layers, keras.layers):
        keras.utils.set_random_seed(1)
        layer = L.SeparableConv2D(bias_initializer="random_normal", **config)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        results.append([y, *tape.gradient(y, [x, *layer.trainable_weights], y + 0.3)])
    assert [w.name for w in layer.weights] == ["depthwise_kernel", "pointwise_kernel",
                                               "bias"][:len(layer.weights)]
    for a, b in zip(*results):
        assert rel_error(a.numpy(), b.numpy()) <= 1e-14


def test_separable_conv2d_backward_is_hand_written():
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              custom_layers.SeparableConv2D(4, 3, activation="relu"),
                              custom_layers.GlobalAveragePooling2D(), custom_layers.Dense(3)])
    generated = tf_generated_gradients(model, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 8, 8, 3], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Const"}, generated


def test_separable_conv2d_refuses_stride_with_dilation():
    with pytest.raises(ValueError, match="strides > 1 cannot be combined with dilation_rate"):
        custom_layers.SeparableConv2D(4, 3, strides=2, dilation_rate=2)
