"""Depthwise convolution: NumPy reference, TF op and the Keras layer against stock."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import (numeric_gradient, numeric_tolerance, rel_error,
                                     rounding_tolerance, tf_gradients)
from custom_layers.gradcheck.checks import check_depthwise_conv2d
from custom_layers.ops import depthwise_convolution as depthwise
from tests.test_layers import _all_op_types
from tests.conftest import skip_unless_convolutions_run_in

CASES = [  # strides, padding, dilation, multiplier, kernel
    (1, "same", 1, 1, 3), (2, "same", 1, 2, 3), (1, "valid", 2, 3, 3),
    (3, "same", 1, 1, 5), (2, "valid", 1, 2, 2), (1, "same", 3, 1, 2),
]


@pytest.mark.parametrize("strides,padding,dilation,multiplier,kernel", CASES)
def test_numpy_loops_vectorised_tf_and_stock_agree(strides, padding, dilation, multiplier, kernel):
    rng = np.random.default_rng(strides * 10 + dilation)
    x = rng.normal(size=(2, 9, 8, 3))
    w = rng.normal(size=(kernel, kernel, 3, multiplier))
    b = rng.normal(size=(3 * multiplier,))
    args = ((strides, strides), padding, (dilation, dilation))
    loops, loops_cache = depthwise.depthwise_conv2d_forward_naive(x, w, b, *args)
    out, cache = depthwise.depthwise_conv2d_forward(x, w, b, *args)
    stock = tf.nn.depthwise_conv2d(x, w, [1, strides, strides, 1], padding.upper(),
                                   dilations=[dilation, dilation]) + b
    tol = rounding_tolerance(out, x, w)
    assert rel_error(loops, out) <= tol and rel_error(stock, out) <= tol
    assert rel_error(depthwise.depthwise_conv2d(x, w, b, *args), out) <= tol
    dout = rng.normal(size=out.shape)
    numpy_grads = depthwise.depthwise_conv2d_backward(dout, cache)
    ours = tf_gradients(lambda *t: depthwise.depthwise_conv2d(*t, *args), (x, w, b), dout)
    autodiff = tf_gradients(lambda xx, ww, bb: tf.nn.depthwise_conv2d(
        xx, ww, [1, strides, strides, 1], padding.upper(), dilations=[dilation, dilation]) + bb,
        (x, w, b), dout)
    loop_grads = depthwise.depthwise_conv2d_backward_naive(dout, loops_cache)
    for name, o, n, s, lg in zip(("dx", "dw", "db"), ours, numpy_grads, autodiff, loop_grads):
        assert rel_error(o, n) <= tol and rel_error(o, s) <= tol and rel_error(lg, n) <= tol, name


@pytest.mark.parametrize("strides,dilation,multiplier", [
    ((2, 2), (1, 1), 2), ((3, 3), (1, 1), 1), ((1, 1), (2, 1), 2), ((1, 1), (2, 2), 1),
])
@pytest.mark.parametrize("batch", ["known", "unknown", "unknown, XLA"])
def test_gradient_forms_agree_with_numpy(strides, dilation, multiplier, batch):
    # dw image by image (unrolled, or a loop over an unknown batch; square
    # dilation) or per tap (the rest); strided dx by phases. (TensorFlow's
    # kernel wants square strides.)
    rng = np.random.default_rng(sum(strides) + sum(dilation))
    x = rng.normal(size=(3, 9, 8, 2))
    w = rng.normal(size=(3, 2, 2, multiplier))
    out, cache = depthwise.depthwise_conv2d_forward(x, w, None, strides, "same", dilation)
    dout = rng.normal(size=out.shape)
    dx_numpy, dw_numpy, _ = depthwise.depthwise_conv2d_backward(dout, cache)
    dx, dw = tf_gradients(lambda *t: depthwise.depthwise_conv2d(*t, None, strides, "same",
                                                                 dilation), (x, w), dout)
    assert rel_error(dx, dx_numpy) <= 1e-12 and rel_error(dw, dw_numpy) <= 1e-12

    n = 3 if batch == "known" else None
    pads = depthwise._geometry((9, 8), (3, 2), strides, "same", dilation)
    grad = tf.function(lambda xx, dd: depthwise._kernel_grad(xx, dd, w.shape, pads, strides,
                                                             dilation),
                       input_signature=[tf.TensorSpec([n, 9, 8, 2], tf.float64),
                                        tf.TensorSpec([n, *out.shape[1:]], tf.float64)],
                       jit_compile=batch.endswith("XLA"))
    assert rel_error(grad(x, dout), dw_numpy) <= 1e-12
    if n is None:  # an empty batch too
        empty = grad(x[:0], dout[:0])
        assert empty.shape == w.shape and not np.any(empty.numpy())


def test_numpy_backward_matches_numeric_gradient():
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(1, 6, 5, 2)), rng.normal(size=(3, 3, 2, 2)), rng.normal(size=(4,))
    out, cache = depthwise.depthwise_conv2d_forward(x, w, b, (2, 2), "same")
    dout = rng.normal(size=out.shape)
    grads = depthwise.depthwise_conv2d_backward(dout, cache)
    for value, grad in zip((x, w, b), grads):
        numeric = numeric_gradient(
            lambda: depthwise.depthwise_conv2d_forward(x, w, b, (2, 2), "same")[0], value, dout)
        assert rel_error(grad, numeric) <= numeric_tolerance(out, dout, grad)


def test_gradcheck_entries_are_within_their_tolerances():
    rng = np.random.default_rng(0)
    for errors in check_depthwise_conv2d(rng, 1, "same", 2, 3).values():
        assert all(e <= t for e, t in errors.values()), errors


def test_backward_uses_no_tensorflow_gradient_kernels():
    x = tf.zeros([2, 8, 8, 3])
    w = tf.zeros([3, 3, 3, 2])

    @tf.function
    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = depthwise.depthwise_conv2d(x, w, None, (2, 2), "same")
        return tape.gradient(y, [x, w])

    types = _all_op_types(grads.get_concrete_function(x, w).graph.as_graph_def())
    assert "DepthwiseConv2dNative" in types
    assert not {t for t in types if "Backprop" in t or t.endswith("Grad")}, types


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding="same", depth_multiplier=2, activation="relu"),
    dict(kernel_size=3, strides=2, use_bias=False),
    dict(kernel_size=(3, 2), dilation_rate=2, padding="same", depth_multiplier=3),
    dict(kernel_size=3, padding="same", data_format="channels_first", activation="tanh"),
])
def test_layer_matches_stock_outputs_and_gradients(float64, kwargs):
    rng = np.random.default_rng(0)
    shape = (2, 3, 9, 8) if kwargs.get("data_format") == "channels_first" else (2, 9, 8, 3)
    x = tf.constant(rng.normal(size=shape))
    stock = keras.layers.DepthwiseConv2D(**kwargs)
    ours = custom_layers.DepthwiseConv2D(**kwargs)
    stock.build(shape)
    ours.build(shape)
    stock.set_weights([rng.normal(size=w.shape) for w in stock.weights])
    ours.set_weights(stock.get_weights())
    results = []
    for layer in (ours, stock):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            weights = tf.reshape(tf.cos(tf.range(tf.size(y), dtype=y.dtype)), tf.shape(y))
            loss = tf.reduce_sum(y * weights)
        results.append((y, tape.gradient(loss, [x, *layer.trainable_variables])))
    (y_ours, g_ours), (y_stock, g_stock) = results
    assert rel_error(y_ours, y_stock) <= 1e-12
    for a, b in zip(g_ours, g_stock):
        assert rel_error(a, b) <= 1e-12


def test_mixed_precision_accumulates_weight_gradients_in_float32():
    skip_unless_convolutions_run_in("float16")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = custom_layers.DepthwiseConv2D(3, padding="same")
        x = tf.random.stateless_normal([4, 16, 16, 8], seed=[1, 2])
        with tf.GradientTape() as tape:
            y = layer(x)
        dw, db = tape.gradient(y, layer.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert y.dtype == tf.float16 and dw.dtype == tf.float32 and db.dtype == tf.float32
    # db is the count of output pixels per channel: 4 * 16 * 16 = 1024, exact in float32.
    np.testing.assert_array_equal(db.numpy(), np.full([8], 1024.0))


@pytest.mark.parametrize("kwargs,message", [
    (dict(kernel_size=3, depth_multiplier=0), "depth_multiplier"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(kernel_size=3, strides=2, dilation_rate=2), "dilation_rate"),
    (dict(kernel_size=3, padding="full"), "padding"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        custom_layers.DepthwiseConv2D(**kwargs)


def test_op_refuses_mismatched_kernel():
    with pytest.raises(ValueError, match="kernel must be"):
        depthwise.depthwise_conv2d(tf.zeros([1, 5, 5, 3]), tf.zeros([3, 3, 4, 1]))
