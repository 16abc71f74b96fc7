"""Second-order gradients (a gradient penalty) through the hand-written layers equal stock's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error


def _net(L):
    """Every layer family once (smooth activations where ReLU kinks would hide curvature)."""
    inputs = keras.Input((10, 10, 3))
    x = L.Conv2D(6, 3, padding="same", activation="tanh", use_bias=False, name="first")(inputs)
    x = L.BatchNormalization()(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="tanh")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(8, 3, dilation_rate=2, padding="same", activation="tanh")(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = keras.layers.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    x = L.Dense(12, activation="tanh")(x)
    return keras.Model(inputs, L.Dense(4, activation="softmax")(x))


def _penalty(model, loss_fn, x, y, training):
    with tf.GradientTape() as inner:
        inner.watch(x)
        loss = loss_fn(y, model(x, training=training))
    return tf.reduce_sum(inner.gradient(loss, x) ** 2)


def _penalty_gradients(model, loss_fn, x, y, training):
    with tf.GradientTape() as outer:
        penalty = _penalty(model, loss_fn, x, y, training)
    return penalty, outer.gradient(penalty, model.trainable_variables)


@pytest.mark.parametrize("training", [False, True])
def test_gradient_penalty_weight_gradients_equal_stock(float64, training):
    """d/dW ‖∂loss/∂x‖² for every weight, custom vs stock, in float64.

    In training mode, stock's value for the weights *before* the batch norm is
    not the true derivative: ``tf.nn.moments`` (behind Keras's batch norm)
    computes the variance around ``stop_gradient(mean)``, harmless for first
    derivatives but not for second ones. There ours is checked against central
    differences of the penalty instead.
    """
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    stock = _net(keras.layers)
    ours = _net(custom_layers)
    ours.set_weights(stock.get_weights())
    # Distinct inputs: no max-pool ties, whose subgradients may differ.
    x = tf.constant(rng.permutation(4 * 10 * 10 * 3).reshape(4, 10, 10, 3) / 1200.0)
    y = tf.constant(rng.integers(0, 4, size=4))
    ours_loss = custom_layers.SparseCategoricalCrossentropy()
    p_ours, g_ours = _penalty_gradients(ours, ours_loss, x, y, training)
    p_stock, g_stock = _penalty_gradients(stock, keras.losses.SparseCategoricalCrossentropy(), x, y,
                                          training)
    assert rel_error(p_ours, p_stock) <= 1e-12
    assert all(g is not None for g in g_ours)
    for variable, a, b in zip(ours.trainable_variables, g_ours, g_stock):
        if not (training and variable.path.startswith("first/")):
            assert rel_error(a, b) <= 1e-8, variable.path
    if training:
        kernel = ours.get_layer("first").kernel
        h, original = 1e-5, kernel.numpy()
        for index in [(0, 0, 0, 0), (1, 2, 1, 3), (2, 1, 2, 5)]:
            values = []
            for sign in (1, -1):
                moved = original.copy()
                moved[index] += sign * h
                kernel.assign(moved)
                values.append(float(_penalty(ours, ours_loss, x, y, True)))
            kernel.assign(original)
            numeric = (values[0] - values[1]) / (2 * h)
            analytic = float(g_ours[0].numpy()[index])
            assert abs(analytic - numeric) <= 1e-6 * np.abs(g_ours[0].numpy()).max(), index


def _assert_penalties_match(ours, stock, x, y) -> None:
    """The inference-mode penalty and its weight gradients equal stock's (a weight's
    error measured against its own scale, or a hundredth of the largest one's)."""
    p_ours, g_ours = _penalty_gradients(ours, custom_layers.SparseCategoricalCrossentropy(), x, y,
                                        False)
    p_stock, g_stock = _penalty_gradients(stock, keras.losses.SparseCategoricalCrossentropy(), x,
                                          y, False)
    assert rel_error(p_ours, p_stock) <= 1e-12
    scale = max(np.abs(g.numpy()).max() for g in g_stock)
    for variable, a, b in zip(ours.trainable_variables, g_ours, g_stock):
        error = np.abs(a.numpy() - b.numpy()).max()
        assert error <= 1e-6 * max(np.abs(b.numpy()).max(), 1e-2 * scale), variable.path


def _newer_net(L):
    """The twins added since: separable and transposed convolutions, upsampling,
    merges, padding, 1-D convolution, smooth activations (layer norm is checked against its
    plain formula in test_layer_norm.py: stock's own second derivative is off there)."""
    inputs = keras.Input((6, 6, 3))
    x = L.SeparableConv2D(4, 3, padding="same", activation="silu")(inputs)
    skip = L.Cropping2D(1)(L.ZeroPadding2D(1)(x))
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="tanh")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Concatenate()([x, L.Multiply()([skip, skip])])
    # Nearest: TensorFlow has no gradient of ResizeBilinearGrad, so stock's second
    # derivative through bilinear upsampling is None (ours is defined).
    x = L.UpSampling2D()(L.Activation("softplus")(x))
    x = keras.layers.Reshape((36, 8))(L.AveragePooling2D(2)(x))
    # (MultiHeadAttention is left out: stock's fused dot_product_attention has no second
    # derivative in TensorFlow, the penalty's gradient of everything before it is None.)
    x = L.Add()([x, L.Dense(8, activation="tanh")(x)])
    x = L.Conv1D(4, 3, activation="elu")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(x)))


def test_gradient_penalty_through_the_newer_twins_equals_stock(float64):
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(0)
    stock = _newer_net(keras.layers)
    ours = _newer_net(custom_layers)
    ours.set_weights(stock.get_weights())
    x = tf.constant(rng.normal(size=(2, 6, 6, 3)))
    y = tf.constant(rng.integers(0, 3, size=2))
    _assert_penalties_match(ours, stock, x, y)


def _volume_net(L):
    """The 3-D twins whose stock kernels take float64: convolution, its transposed
    form, padding, cropping, upsampling, global pooling (3-D max and average
    pooling are checked in float32 against stock in test_volumetric.py)."""
    inputs = keras.Input((4, 5, 4, 2))
    x = L.Conv3D(3, 3, padding="same", activation="tanh")(inputs)
    x = L.Cropping3D(1)(L.ZeroPadding3D(1)(x))
    x = L.Conv3DTranspose(2, 2, strides=(2, 1, 2), activation="softplus")(x)
    x = L.Conv3D(2, (2, 1, 3), strides=2, activation="tanh")(L.UpSampling3D((1, 2, 1))(x))
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalMaxPooling3D()(x)))


def _sequence_net(L):
    """The 1-D twins and the merges, PReLU and rescaling not in ``_newer_net`` (group
    norm, like layer norm, is checked against its plain formula in test_group_norm.py:
    stock's second derivative there differs from the formula's)."""
    inputs = keras.Input((9, 3))
    x = L.Rescaling(0.5, offset=0.1)(inputs)
    x = L.DepthwiseConv1D(3, depth_multiplier=2, activation="tanh")(x)
    x = L.SeparableConv1D(4, 3, padding="same", activation="silu")(x)
    x = L.Conv1DTranspose(4, 3, strides=2, activation="tanh")(L.UpSampling1D(2)(x))
    x = L.PReLU(alpha_initializer=keras.initializers.Constant(0.3))(x)
    y = L.Conv1D(4, 1, activation="sigmoid")(x)
    x = L.Average()([L.Maximum()([x, y]), L.Subtract()([x, L.Minimum()([x, y])])])
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalMaxPooling1D()(x)))


@pytest.mark.parametrize("net, shape", [(_volume_net, (2, 4, 5, 4, 2)),
                                        (_sequence_net, (2, 9, 3))], ids=["3-D", "1-D"])
def test_gradient_penalty_through_the_volumetric_and_sequence_twins_equals_stock(
        float64, net, shape):
    rng = np.random.default_rng(2)
    keras.utils.set_random_seed(0)
    stock, ours = net(keras.layers), net(custom_layers)
    ours.set_weights(stock.get_weights())
    x = tf.constant(rng.normal(size=shape))
    y = tf.constant(rng.integers(0, 3, size=shape[0]))
    _assert_penalties_match(ours, stock, x, y)
