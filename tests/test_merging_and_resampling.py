"""Merge, padding, cropping and upsampling layers, hand-written: equal to stock (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from custom_layers.ops import merging, padding, upsampling
from tests.graph_walk import tf_generated_gradients


def _grads(f, xs, dy_seed=0):
    xs = [tf.constant(x) for x in xs]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        y = f(xs)
    dy = tf.constant(np.random.default_rng(dy_seed).normal(size=y.shape))
    return [y.numpy(), *[g.numpy() for g in tape.gradient(y, xs, dy)]]


def _inputs(*shapes, ties=False):
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=s) for s in shapes]
    return [np.round(x) for x in xs] if ties else xs  # rounding makes many exact ties


MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


@pytest.mark.parametrize("name", MERGES)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_merge_layers_equal_stock_with_broadcasting_and_ties(float64, name, ties):
    shapes = [(3, 4, 5), (3, 1, 5)] + ([] if name == "Subtract" else [(3, 4, 5)])
    xs = _inputs(*shapes, ties=ties)
    ours = _grads(getattr(custom_layers, name)(), xs)
    stock = _grads(getattr(keras.layers, name)(), xs)
    for a, b in zip(ours, stock):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "maximum", "minimum"])
def test_pair_ops_match_the_numpy_reference(name):
    a, b = _inputs((2, 3, 4), (1, 3, 1), ties=True)
    out, cache = merging.pair_forward(name, a, b)
    dy = np.random.default_rng(2).normal(size=out.shape)
    ours = _grads(lambda t: getattr(merging, name)(*t), [a, b], dy_seed=2)
    assert rel_error(out, ours[0]) == 0
    for a_, b_ in zip(merging.pair_backward(name, dy, cache), ours[1:]):
        assert rel_error(a_, b_) <= 1e-15


@pytest.mark.parametrize("name", ["Multiply", "Maximum"])
def test_masked_merges_equal_stock(float64, name):
    # Embedding masks zero ids: the layers then fill and combine as Keras does.
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 0]])
    results = []
    for L in (custom_layers, keras.layers):
        keras.utils.set_random_seed(3)
        embed = keras.layers.Embedding(5, 3, mask_zero=True)
        embed.build(ids.shape)
        with tf.GradientTape() as tape:
            y = getattr(L, name)()([embed(ids), embed(ids[:, ::-1].copy())])
        grad = tape.gradient(y, embed.trainable_variables, tf.ones_like(y) * 0.5 + y)[0]
        results.append([y.numpy(), tf.convert_to_tensor(grad).numpy()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_concatenate_equals_stock_on_any_axis(float64):
    xs = _inputs((2, 3, 4), (2, 5, 4))
    for axis in (1, -2):
        ours = _grads(custom_layers.Concatenate(axis=axis), xs)
        stock = _grads(keras.layers.Concatenate(axis=axis), xs)
        for a, b in zip(ours, stock):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda L: L.ZeroPadding1D((1, 2)), lambda L: L.ZeroPadding2D(((1, 0), (2, 3))),
    lambda L: L.ZeroPadding2D(1, data_format="channels_first"),
    lambda L: L.Cropping2D(((1, 0), (0, 2))), lambda L: L.Cropping2D(1, data_format="channels_first"),
    lambda L: L.Cropping1D((2, 1)), lambda L: L.Cropping1D((0, 3)),
    lambda L: L.ZeroPadding3D(((1, 0), (0, 2), (1, 1))),
    lambda L: L.ZeroPadding3D(1, data_format="channels_first"),
    lambda L: L.Cropping3D(((1, 0), (0, 2), (1, 1))),
    lambda L: L.Cropping3D(((0, 1), (1, 0), (0, 0)), data_format="channels_first"),
], ids=["pad1d", "pad2d", "pad2d-channels_first", "crop2d", "crop2d-channels_first", "crop1d",
        "crop1d-after", "pad3d", "pad3d-channels_first", "crop3d", "crop3d-channels_first"])
def test_padding_and_cropping_equal_stock(float64, make):
    layer = make(custom_layers)
    rank = 3 if "1D" in type(layer).__name__ else 5 if "3D" in type(layer).__name__ else 4
    xs = _inputs((2, 5, 6, 4, 3)[:rank - 1] + (3,))
    stock_layer = make(keras.layers)
    ours, stock = _grads(lambda t: layer(t[0]), xs), _grads(lambda t: stock_layer(t[0]), xs)
    for a, b in zip(ours, stock):
        np.testing.assert_array_equal(a, b)


def test_padding_pair_numpy_reference_is_each_others_adjoint():
    x = np.random.default_rng(4).normal(size=(2, 3, 4))
    amounts = [(0, 0), (1, 2), (3, 0)]
    padded, cache = padding.zero_pad_forward(x, amounts)
    np.testing.assert_array_equal(padding.zero_pad_backward(padded, cache), x)
    cropped, cache = padding.crop_forward(padded, amounts)
    np.testing.assert_array_equal(cropped, x)
    np.testing.assert_array_equal(padding.crop_backward(cropped, cache), padded)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_upsampling2d_equals_stock(float64, interpolation):
    xs = _inputs((2, 4, 5, 3))
    kwargs = dict(size=(2, 3), interpolation=interpolation)
    ours = _grads(lambda t: custom_layers.UpSampling2D(**kwargs)(t[0]), xs)
    stock = _grads(lambda t: keras.layers.UpSampling2D(**kwargs)(t[0]), xs)
    np.testing.assert_array_equal(ours[0], stock[0])
    # TensorFlow resizes in float32 inside, its gradient kernels too: ~1e-8 apart.
    assert rel_error(ours[1], stock[1]) <= (1e-15 if interpolation == "nearest" else 1e-6)


@pytest.mark.parametrize("make, shape", [
    (lambda L: L.UpSampling1D(3), (2, 4, 3)),
    (lambda L: L.UpSampling3D((2, 1, 3)), (2, 3, 4, 2, 3)),
    (lambda L: L.UpSampling3D(2, data_format="channels_first"), (2, 3, 2, 4, 3)),
], ids=["1d", "3d", "3d-channels_first"])
def test_upsampling_1d_and_3d_equal_stock(float64, make, shape):
    xs = _inputs(shape)
    layer, stock_layer = make(custom_layers), make(keras.layers)
    ours, stock = _grads(lambda t: layer(t[0]), xs), _grads(lambda t: stock_layer(t[0]), xs)
    np.testing.assert_array_equal(ours[0], stock[0])
    # dx sums each block of copies, in another order than stock's repeat gradient.
    assert rel_error(ours[1], stock[1]) <= 1e-14


def test_lanczos_upsampling_equals_stock_in_float32():
    # Stock's Lanczos gradient kernel takes float32 only.
    xs = [x.astype(np.float32) for x in _inputs((2, 4, 5, 3))]
    results = []
    for L in (custom_layers, keras.layers):
        x = tf.constant(xs[0])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = L.UpSampling2D(size=(2, 3), interpolation="lanczos3")(x)
        results.append([y.numpy(), tape.gradient(y, x, tf.sin(y)).numpy()])
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert rel_error(results[0][1], results[1][1]) <= 1e-6


def test_upsampling_numpy_reference_equals_the_tf_ops():
    x = _inputs((2, 4, 5, 3))[0]
    for forward, backward, op in (
            (upsampling.upsample_nearest_forward, upsampling.upsample_nearest_backward,
             upsampling.upsample_nearest),
            (upsampling.upsample_bilinear_forward, upsampling.upsample_bilinear_backward,
             upsampling.upsample_interpolated)):
        out, cache = forward(x, (2, 3))
        dy = np.random.default_rng(5).normal(size=out.shape)
        ours = _grads(lambda t: op(t[0], (2, 3)), [x], dy_seed=5)
        assert rel_error(out, ours[0]) <= 1e-6
        assert rel_error(backward(dy, cache), ours[1]) <= 1e-15


def test_upsampling2d_refuses_interpolations_without_a_hand_written_backward():
    with pytest.raises(ValueError, match="hand-written backwards for .*'lanczos5'"):
        custom_layers.UpSampling2D(interpolation="area")


def test_a_small_unet_backpropagates_only_through_hand_written_ops():
    inputs = keras.Input((8, 8, 3))
    down = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    low = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.MaxPooling2D()(down))
    up = keras.layers.UpSampling2D(interpolation="bilinear")(low)
    skip = keras.layers.Cropping2D(1)(keras.layers.ZeroPadding2D(1)(down))
    h = keras.layers.Concatenate()([up, keras.layers.Multiply()([skip, skip])])
    h = keras.layers.Add()([keras.layers.Conv2D(4, 1)(h), up])
    h = keras.layers.Maximum()([h, keras.layers.Average()([h, skip])])
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    swapped = custom_layers.swap_layers(model)
    assert swapped.stock_layer_names == []
    generated = tf_generated_gradients(swapped, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 8, 8, 3], num_classes=3)
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated
