"""custom_layers.swap_layers: whole Keras models rebuilt with the hand-written twins."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from custom_layers.swap import TWINS

# Layers with no hand-written twin yet; they stay stock (and are listed).
NO_TWIN_YET = set()
# Layers that only move data (TensorFlow's gradient of them is a reshape or a slice).
PARAMETERLESS = {"InputLayer", "Flatten", "Reshape"}


def _gradients(model, x, training):
    with tf.GradientTape() as tape:
        y = model(x, training=training)
        loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype=y.dtype))
    return y.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


@pytest.mark.parametrize("family", ["ResNet50", "DenseNet121", "MobileNetV2"])
def test_keras_applications_rebuilt_with_twins_compute_the_same(float64, family):
    stock = getattr(keras.applications, family)(weights=None, input_shape=(32, 32, 3), classes=10)
    ours = custom_layers.swap_layers(stock, keep_unsupported=True)
    for layer in ours.layers:
        kind = type(layer).__name__
        if layer.name in ours.swapped_layer_names:
            assert type(layer).__module__.startswith("custom_layers"), layer.name
        else:
            assert kind in PARAMETERLESS | NO_TWIN_YET, (layer.name, kind)
    assert len(ours.swapped_layer_names) > 80
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 32, 32, 3)))
    # Inference mode is well conditioned all the way down: gradients agree to rounding.
    y_stock, g_stock = _gradients(stock, x, training=False)
    y_ours, g_ours = _gradients(ours, x, training=False)
    assert rel_error(y_ours, y_stock) <= 1e-12
    for variable, a, b in zip(stock.trainable_variables, g_ours, g_stock):
        assert rel_error(a, b) <= 1e-6, variable.path
    # Training mode (batch statistics): the outputs agree too. (Its gradients reach
    # 1x1 feature maps normalised over 4 values, which no float64 comparison survives.)
    assert rel_error(ours(x, training=True), stock(x, training=True)) <= 1e-9


def _small_resnet():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    for filters, stride in ((8, 1), (16, 2)):
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.Activation("relu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = keras.layers.BatchNormalization()(y)
        if stride != 1:
            shortcut = keras.layers.Conv2D(filters, 1, strides=stride)(shortcut)
            shortcut = keras.layers.AveragePooling2D(1)(shortcut)
        x = keras.layers.Activation("relu")(keras.layers.Add()([shortcut, y]))
    x = keras.layers.Dropout(0.0)(x)
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(x),
                                    keras.layers.GlobalMaxPooling2D()(x)])
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def test_training_step_of_a_residual_net_matches_stock(float64):
    stock = _small_resnet()
    ours = custom_layers.swap_layers(stock)
    assert not ours.stock_layer_names or {type(ours.get_layer(n)).__name__
                                          for n in ours.stock_layer_names} <= PARAMETERLESS
    x = tf.constant(np.random.default_rng(1).normal(size=(8, 16, 16, 3)))
    y_stock, g_stock = _gradients(stock, x, training=True)
    y_ours, g_ours = _gradients(ours, x, training=True)
    assert rel_error(y_ours, y_stock) <= 1e-10
    for variable, a, b in zip(stock.trainable_variables, g_ours, g_stock):
        assert rel_error(a, b) <= 1e-6, variable.path
    # The moving statistics moved the same way.
    for a, b in zip(ours.get_weights(), stock.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_unsupported_configuration_is_an_error_unless_kept():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.BatchNormalization(synchronized=True, name="synced")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="layer 'synced' \\(BatchNormalization\\) has no hand-written twin"):
        custom_layers.swap_layers(model)
    kept = custom_layers.swap_layers(model, keep_unsupported=True)
    assert "synced" in kept.stock_layer_names and kept.swapped_layer_names == ["head"]
    assert type(kept.get_layer("synced")) is keras.layers.BatchNormalization


def test_every_twin_is_registered_and_a_subclass_or_namesake():
    for stock_cls, twin in TWINS.items():
        assert twin.__name__ == stock_cls.__name__
        assert keras.saving.get_registered_object(f"custom_layers>{twin.__name__}") is twin


def test_nested_models_are_swapped_inside_with_their_weights(float64):
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="inner_conv"),
                              keras.layers.LayerNormalization(name="inner_norm")], name="block")
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D()(inner(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(2, name="head")(features))
    swapped = custom_layers.swap_layers(nested)
    block = swapped.get_layer("block")
    assert type(block.get_layer("inner_conv")) is custom_layers.Conv2D
    assert type(block.get_layer("inner_norm")) is custom_layers.LayerNormalization
    assert {"inner_conv", "inner_norm", "head"} <= set(swapped.swapped_layer_names)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
    np.testing.assert_allclose(swapped(x), nested(x), rtol=1e-12)


def test_layers_inside_wrappers_are_refused_not_left_stock():

    frames = keras.Input((5, 8, 8, 3))
    wrapped = keras.Model(frames, keras.layers.TimeDistributed(
        keras.layers.Conv2D(2, 3, name="frame_conv"), name="per_frame")(frames))
    with pytest.raises(ValueError, match=r"'per_frame' \(TimeDistributed\).*frame_conv \(Conv2D\)"):
        custom_layers.swap_layers(wrapped)
