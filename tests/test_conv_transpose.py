"""Conv2DTranspose: the convolution's hand-written passes swapped, equal to stock (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from custom_layers.ops import transposed_conv2d
from tests.graph_walk import tf_generated_gradients


@pytest.mark.parametrize("config", [
    dict(filters=4, kernel_size=3), dict(filters=4, kernel_size=4, strides=2, padding="same"),
    dict(filters=2, kernel_size=(3, 2), strides=(2, 3), output_padding=(1, 2)),
    dict(filters=5, kernel_size=1, strides=2, activation="relu"),
    dict(filters=3, kernel_size=3, strides=2, padding="same", data_format="channels_first"),
], ids=["valid", "strided-same", "output_padding", "1x1-relu", "channels_first"])
def test_conv2d_transpose_equals_stock(float64, config):
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3))
    results = []
    for L, fmt in ((custom_layers, config.get("data_format")), (keras.layers, None)):
        # Stock runs NHWC (TensorFlow's CPU kernels have no NCHW); ours is transposed back.
        keras.utils.set_random_seed(1)
        layer = L.Conv2DTranspose(bias_initializer="random_normal",
                                  **{**config, "data_format": fmt or "channels_last"})
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(tf.transpose(xt, [0, 3, 1, 2])) if fmt == "channels_first" else layer(xt)
            y = tf.transpose(y, [0, 2, 3, 1]) if fmt == "channels_first" else y
        results.append([y, *tape.gradient(y, [xt, *layer.trainable_weights], tf.sin(y))])
    for a, b in zip(*results):
        assert rel_error(a.numpy(), b.numpy()) <= 1e-14


def test_an_output_that_does_not_convolve_back_is_refused():
    with pytest.raises(ValueError, match=r"an output of \(9, 9\) convolves to \(3, 3\)"):
        transposed_conv2d(tf.zeros([1, 5, 5, 2]), tf.zeros([3, 3, 4, 2]), None, (9, 9), (3, 3))


def test_a_decoder_backpropagates_only_through_hand_written_ops():
    model = keras.Sequential([
        keras.Input((4, 4, 3)), keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same",
                                                             activation="relu"),
        keras.layers.Conv2DTranspose(2, 2, strides=2), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3)])
    swapped = custom_layers.swap_layers(model)
    generated = tf_generated_gradients(swapped, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 4, 4, 3], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated
