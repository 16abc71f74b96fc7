"""3-D convolution, its transposed form and 3-D pooling: the 2-D ops on the depth's
taps (unfold / fold), equal to the NumPy loops and to stock Keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import reference
from custom_layers.gradcheck import rel_error
from custom_layers.ops import unfolding, volumetric_convolution, volumetric_pooling
from tests.conftest import skip_unless_convolutions_run_in
from tests.graph_walk import tf_generated_gradients
from tests.tape import layer_step, penalty_gradient


@pytest.mark.parametrize("window, stride, dilation, pads", [
    (3, 1, 1, (1, 1)), (3, 2, 1, (0, 1)), (2, 3, 2, (2, 0)), (1, 2, 1, (0, 0))])
def test_unfold_and_fold_are_each_others_backward(window, stride, dilation, pads):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 3, 4))
    out, cache = reference.unfold_forward(x, 1, window, stride, dilation, pads)
    dout = rng.normal(size=out.shape)
    dx = reference.unfold_backward(dout, cache)
    assert np.isclose(np.sum(out * dout), np.sum(x * dx))  # adjoint: <Ux, g> = <x, Uᵀg>
    xt, dt = tf.constant(x), tf.constant(dout)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([xt, dt])
        unfolded = unfolding.unfold(xt, 1, window, stride, dilation, pads)
        folded = unfolding.fold(dt, 1, 9, stride, dilation, pads)
    np.testing.assert_array_equal(unfolded, out)
    np.testing.assert_allclose(folded, dx, atol=1e-14)
    np.testing.assert_allclose(tape.gradient(unfolded, xt, dt), dx, atol=1e-14)
    np.testing.assert_array_equal(tape.gradient(folded, dt, xt), reference.unfold_forward(
        x, 1, window, stride, dilation, pads)[0])


def test_bad_unfoldings_are_refused():
    with pytest.raises(ValueError, match="between the batch and the channels"):
        unfolding.unfold(tf.zeros([2, 5, 3]), 2, 2)
    with pytest.raises(ValueError, match="does not fit"):
        unfolding.unfold(tf.zeros([2, 3, 3]), 1, 5)
    with pytest.raises(ValueError, match="holds 4 windows, not the input's 3"):
        unfolding.fold(tf.zeros([1, 3, 2, 1]), 1, 5)


@pytest.mark.parametrize("strides, padding", [(1, "valid"), ((2, 1, 2), "same"), (3, "same")])
def test_conv3d_numpy_forms_and_op_equal_tensorflow(strides, padding):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 6, 5, 7, 3)), rng.normal(size=(3, 2, 3, 3, 4))
    b = rng.normal(size=4)
    naive, naive_cache = reference.conv3d_forward_naive(x, w, b, strides, padding)
    fast, fast_cache = reference.conv3d_forward(x, w, b, strides, padding)
    dout = rng.normal(size=naive.shape)
    tensors = [tf.constant(v) for v in (x, w, b)]
    stride_list = [1, *((strides,) * 3 if isinstance(strides, int) else strides), 1]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tensors)
        ours = volumetric_convolution.conv3d(*tensors, strides, padding)
        stock = tf.nn.conv3d(tensors[0], tensors[1], stride_list, padding.upper()) + tensors[2]
    expected = [stock, *tape.gradient(stock, tensors, tf.constant(dout))]
    for result in ([naive, *reference.conv3d_backward_naive(dout, naive_cache)],
                   [fast, *reference.conv3d_backward(dout, fast_cache)],
                   [ours, *tape.gradient(ours, tensors, tf.constant(dout))]):
        for got, want in zip(result, expected):
            assert rel_error(np.asarray(got), want.numpy()) <= 1e-13


def _twin_pair(name, config, shape):
    """(ours, stock): layer ``name`` built for ``shape``, stock's weights in ours."""
    keras.utils.set_random_seed(2)
    stock = getattr(keras.layers, name)(**config)
    stock.build(shape)
    ours = getattr(custom_layers, name)(**config)
    ours.build(shape)
    for weight in stock.weights:  # a random bias, so db is checked against a non-zero one
        weight.assign(np.random.default_rng(3).normal(size=weight.shape))
    ours.set_weights(stock.get_weights())
    return ours, stock


@pytest.mark.parametrize("name, config, shape", [
    ("Conv3D", dict(filters=4, kernel_size=3, padding="same", activation="relu"), (2, 5, 6, 4, 3)),
    ("Conv3D", dict(filters=6, kernel_size=(2, 3, 1), strides=(2, 1, 2), groups=3),
     (2, 5, 6, 4, 3)),
    ("Conv3D", dict(filters=2, kernel_size=2, dilation_rate=(2, 1, 2), activation="silu"),
     (1, 6, 4, 5, 2)),
    ("Conv3DTranspose", dict(filters=3, kernel_size=(3, 2, 3), strides=(2, 1, 2),
                             padding="same"), (2, 3, 4, 3, 2)),
    ("Conv3DTranspose", dict(filters=2, kernel_size=2, strides=(3, 2, 2),
                             output_padding=(1, 1, 0)), (1, 3, 2, 3, 2)),
    ("Conv1DTranspose", dict(filters=3, kernel_size=4, strides=2, padding="same"), (2, 5, 3)),
    ("Conv1DTranspose", dict(filters=2, kernel_size=3, strides=3, output_padding=1),
     (2, 6, 3)),
], ids=["conv3d-same-relu", "conv3d-grouped-strided", "conv3d-dilated-silu", "t3d-same",
        "t3d-output-padding", "t1d-same", "t1d-output-padding"])
def test_layers_equal_stock_in_float64(float64, name, config, shape):
    ours, stock = _twin_pair(name, config, shape)
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=shape))
    dy = tf.constant(rng.normal(size=stock.compute_output_shape(shape)))
    for a, b in zip(layer_step(ours, x, dy), layer_step(stock, x, dy)):
        assert rel_error(a.numpy(), b.numpy()) <= 1e-13


def test_channels_first_conv3d_is_the_channels_last_one_transposed(float64):
    config = dict(filters=3, kernel_size=(2, 3, 3), strides=2, padding="same")
    last, _ = _twin_pair("Conv3D", config, (2, 5, 6, 7, 2))
    first = custom_layers.Conv3D(data_format="channels_first", **config)
    first.build((2, 2, 5, 6, 7))
    first.set_weights(last.get_weights())
    x = np.random.default_rng(5).normal(size=(2, 5, 6, 7, 2))
    y_first = first(np.transpose(x, [0, 4, 1, 2, 3]))
    np.testing.assert_allclose(np.transpose(y_first, [0, 2, 3, 4, 1]), last(x), atol=1e-13)


def test_dilated_conv3d_transpose_is_the_adjoint_of_the_dilated_conv3d(float64):
    # Stock's CPU kernel has no dilated Conv3DTranspose; the adjoint identity
    # <conv(z), x> = <z, conv_transpose(x)> pins ours down instead.
    rng = np.random.default_rng(6)
    kernel = tf.constant(rng.normal(size=(3, 2, 2, 2, 3)))  # (KD, KH, KW, F, C)
    z = tf.constant(rng.normal(size=(2, 9, 4, 5, 2)))  # (N, DO, HO, WO, F)
    conv = volumetric_convolution.conv3d(z, kernel, None, 1, "same", (2, 1, 2))
    x = tf.constant(rng.normal(size=conv.shape))
    transposed = volumetric_convolution.transposed_conv3d(x, kernel, None, (9, 4, 5), 1, "same",
                                                          (2, 1, 2))
    assert np.isclose(tf.reduce_sum(conv * x), tf.reduce_sum(z * transposed), rtol=1e-12)


@pytest.mark.parametrize("pool_size, strides, padding", [
    (2, None, "valid"), ((3, 2, 3), (2, 1, 2), "same"), ((2, 3, 2), (1, 2, 3), "valid")])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool3d_equals_stock_and_the_numpy_forms(kind, pool_size, strides, padding):
    rng = np.random.default_rng(7)
    # Distinct values: one maximum per window (stock's float64 3-D pooling does not run).
    x = rng.permutation(2 * 5 * 6 * 7 * 3).reshape(2, 5, 6, 7, 3) / 10.0
    op = volumetric_pooling.max_pool3d if kind == "max" else volumetric_pooling.avg_pool3d
    stock_op = tf.nn.max_pool3d if kind == "max" else tf.nn.avg_pool3d
    results = []
    for dtype in (tf.float32, tf.float64):
        xt = tf.constant(x, dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(xt)
            y = op(xt, pool_size, strides, padding)
            stock = (stock_op(xt, pool_size, pool_size if strides is None else strides,
                              padding.upper()) if dtype == tf.float32 else None)
        dy = tf.constant(np.cos(np.arange(y.shape.num_elements())).reshape(y.shape), dtype)
        results.append([y, tape.gradient(y, xt, dy), stock,
                        None if stock is None else tape.gradient(stock, xt, dy)])
    (y32, dx32, stock, dstock), (y64, dx64, _, _) = results
    assert rel_error(y32.numpy(), stock.numpy()) <= 1e-6
    assert rel_error(dx32.numpy(), dstock.numpy()) <= 1e-6
    dout = np.cos(np.arange(y64.shape.num_elements())).reshape(y64.shape)
    naive, cache = reference.pool3d_forward_naive(x, kind, pool_size, strides, padding)
    forms = [(naive, reference.pool3d_backward_naive(dout, cache))]
    if kind == "avg":
        fast, fast_cache = reference.avg_pool3d_forward(x, pool_size, strides, padding)
        forms.append((fast, reference.avg_pool3d_backward(dout, fast_cache)))
    for out, dx in forms:
        assert rel_error(out, y64.numpy()) <= 1e-14
        assert rel_error(dx, dx64.numpy()) <= 1e-14


def test_max_pool3d_sends_a_tied_windows_gradient_to_its_first_maximum():
    x = tf.zeros([1, 2, 2, 2, 1])  # every cell ties
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = volumetric_pooling.max_pool3d(x, 2)
        stock = tf.nn.max_pool3d(x, 2, 2, "VALID")
    dx, dx_stock = (tape.gradient(t, x).numpy().ravel() for t in (y, stock))
    np.testing.assert_array_equal(dx, [1, 0, 0, 0, 0, 0, 0, 0])  # the 2-D kernel's rule
    # Stock's CPU kernel hands every tied cell the whole dy (8 dy for one window).
    np.testing.assert_array_equal(dx_stock, np.ones(8))


def test_second_order_gradients_equal_stock(float64):
    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(2, 4, 5, 4, 2)))
    kernel = tf.constant(rng.normal(size=(2, 3, 2, 2, 3)))
    dy = tf.constant(rng.normal(size=(2, 2, 5, 2, 3)))  # the output's shape
    # tanh after the (linear) convolution, so the penalty's gradient depends on x.
    ours = penalty_gradient(lambda t: tf.tanh(volumetric_convolution.conv3d(
        t, kernel, None, (2, 1, 2), "same")), x, dy)
    stock = penalty_gradient(lambda t: tf.tanh(tf.nn.conv3d(t, kernel, [1, 2, 1, 2, 1], "SAME")),
                             x, dy)
    assert rel_error(ours, stock) <= 1e-12


def test_a_volumetric_model_backpropagates_only_through_hand_written_ops():
    model = keras.Sequential([
        keras.Input((4, 6, 6, 2)),
        keras.layers.Conv3D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling3D(2),
        keras.layers.Conv3DTranspose(3, 2, strides=2),
        keras.layers.AveragePooling3D(2, padding="same"),
        keras.layers.GlobalMaxPooling3D(),
        keras.layers.Dense(3)])
    swapped = custom_layers.swap_layers(model)
    assert not swapped.stock_layer_names
    generated = tf_generated_gradients(swapped, custom_layers.SparseCategoricalCrossentropy(),
                                       [2, 4, 6, 6, 2], num_classes=3)
    moves = {"Reshape", "Shape", "Const", "Transpose", "InvertPermutation"}  # no arithmetic
    assert set().union(*generated.values()) <= moves, generated


def test_global_pooling3d_equals_stock():
    x = tf.constant(np.random.default_rng(9).normal(size=(2, 3, 4, 5, 2)), tf.float32)
    for name in ("GlobalAveragePooling3D", "GlobalMaxPooling3D"):
        for fmt in ("channels_last", "channels_first"):
            config = dict(data_format=fmt, keepdims=True)
            dy = tf.ones(getattr(keras.layers, name)(**config).compute_output_shape(x.shape))
            ours, stock = (layer_step(getattr(m, name)(**config), x, dy)
                           for m in (custom_layers, keras.layers))
            for a, b in zip(ours, stock):
                np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("name, config", [
    ("Conv3D", dict(filters=4, kernel_size=3, padding="same")),
    ("Conv3DTranspose", dict(filters=4, kernel_size=2, strides=2)),
    ("MaxPooling3D", dict(pool_size=2, padding="same")),
    ("AveragePooling3D", dict(pool_size=(3, 2, 2), strides=2, padding="same"))])
def test_mixed_bfloat16_keeps_float32_weights_and_values(name, config):
    skip_unless_convolutions_run_in("bfloat16")
    shape = (2, 5, 6, 6, 3)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(10)
        layers = [getattr(module, name)(**config) for module in (custom_layers, keras.layers)]
        for layer in layers:
            layer.build(shape)
        layers[0].set_weights(layers[1].get_weights())
        rng = np.random.default_rng(11)
        # Distinct bfloat16 values (7 mantissa bits, one binade per 128): no ties to route.
        k = rng.permutation(np.prod(shape)).reshape(shape)
        x = tf.constant((1 + (k % 128) / 128) * 2.0 ** (k // 128 - 4), tf.float32)
        dy = tf.constant(rng.normal(size=layers[1].compute_output_shape(shape)), tf.bfloat16)
        ours, stock = (layer_step(layer, x, dy) for layer in layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ours[0].dtype == tf.bfloat16
    assert all(g.dtype == tf.float32 for g in ours[2:])
    if layers[1].weights:
        # Convolutions against the exact float64 step on the same bfloat16 operands:
        # stock's own bfloat16 convolution is off by ~2% without oneDNN.
        stock = _float64_step(name, config, layers[1], x, dy)
    if len(ours) == 4:
        # db against the exact sum: stock's bfloat16 bias gradient sums in bfloat16
        # (4% off here), ours in float32.
        exact = tf.reduce_sum(tf.cast(dy, tf.float64), axis=[0, 1, 2, 3]).numpy()
        assert rel_error(ours.pop().numpy(), exact) <= 2 ** -7
        stock.pop()
    assert len(ours) == len(stock)
    for a, b in zip(ours, stock):
        assert rel_error(a.numpy().astype(np.float64), b.numpy().astype(np.float64)) <= 2 ** -7


def _float64_step(name, config, layer, x, dy):
    """``layer_step`` of a float64 stock ``name`` with ``layer``'s weights rounded to
    bfloat16, as mixed_bfloat16 computes with them."""
    exact = getattr(keras.layers, name)(dtype="float64", **config)
    exact.build(x.shape)
    exact.set_weights([np.asarray(tf.cast(tf.cast(w, tf.bfloat16), tf.float64))
                       for w in layer.get_weights()])
    return layer_step(exact, tf.cast(x, tf.float64), tf.cast(dy, tf.float64))


@pytest.mark.parametrize("layer", [custom_layers.Conv3D(2, 3), custom_layers.MaxPooling3D(2),
                                   custom_layers.Conv3DTranspose(2, 3)])
def test_an_unknown_depth_is_a_clear_error(layer):
    traced = tf.function(layer, input_signature=[tf.TensorSpec([None, None, 6, 6, 2])])
    with pytest.raises(ValueError, match="depth, height and width known"):
        traced.get_concrete_function()
