"""The TF ops' hand-written gradients vs numeric gradients, TF autodiff and NumPy."""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from custom_layers import ops
from custom_layers import reference as ref
from custom_layers.gradcheck import (numeric_gradient, numeric_tolerance, rel_error,
                                     rounding_tolerance, tf_gradients)
from custom_layers.ops.convolution_kernel_grad import plan_kernel_grad
from custom_layers.ops.shapes import spatial_padding
from tests.conftest import skip_unless_convolutions_run_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Odd, non-square images; batch 1 and 2.
SHAPES = [(1, 7, 5, 2), (2, 8, 9, 3)]
CONV_CASES = list(itertools.product([1, 3, 5], [1, 2, 3], ["valid", "same"]))


def _conv_inputs(rng, shape, k):
    x = rng.normal(size=shape)
    w = rng.normal(size=(k, k, shape[3], 4))
    b = rng.normal(size=4)
    return x, w, b


def _stock_conv(stride, padding):
    return lambda x, w, b: tf.nn.conv2d(x, w, stride, padding.upper()) + b


@pytest.mark.parametrize("k,stride,padding", CONV_CASES)
def test_conv2d_matches_numeric_autodiff_and_numpy(k, stride, padding):
    rng = np.random.default_rng(k * 100 + stride)
    for shape in SHAPES:
        x, w, b = _conv_inputs(rng, shape, k)
        out, cache = ref.conv2d_forward(x, w, b, stride, padding)
        dout = rng.normal(size=out.shape)
        ours = tf_gradients(lambda *t: ops.conv2d(*t, strides=stride, padding=padding), (x, w, b), dout)
        stock = tf_gradients(_stock_conv(stride, padding), (x, w, b), dout)
        numpy_grads = ref.conv2d_backward(dout, cache)
        analytic = rounding_tolerance(out, x, w)
        for i, value in enumerate((x, w, b)):
            numeric = numeric_gradient(lambda: ref.conv2d_forward(x, w, b, stride, padding)[0], value, dout)
            assert rel_error(ours[i], numeric) <= numeric_tolerance(out, dout, ours[i])
            assert rel_error(ours[i], stock[i]) <= analytic
            assert rel_error(ours[i], numpy_grads[i]) <= analytic
        y = ops.conv2d(x, w, b, stride, padding).numpy()
        np.testing.assert_allclose(y, out, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k,stride,padding", CONV_CASES)
def test_max_pool2d_matches_autodiff_and_numpy_with_ties(k, stride, padding):
    rng = np.random.default_rng(k * 10 + stride)
    for shape in SHAPES:
        # Small integers: ties in most windows, overlapping windows for stride < k.
        x = rng.integers(0, 4, size=shape).astype(np.float64)
        out, cache = ref.max_pool2d_forward(x, k, stride, padding)
        dout = rng.normal(size=out.shape)
        ours = tf_gradients(lambda t: ops.max_pool2d(t, k, stride, padding), (x,), dout)[0]
        stock = tf_gradients(lambda t: tf.nn.max_pool2d(t, k, stride, padding.upper()), (x,), dout)[0]
        np.testing.assert_allclose(ours, stock, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours, ref.max_pool2d_backward(dout, cache), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,stride,padding", [(2, 2, "valid"), (3, 2, "same"), (3, 1, "valid")])
def test_max_pool2d_matches_numeric_gradient(k, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 7 * 5 * 2).reshape(2, 7, 5, 2) / 7.0  # distinct values
    out, _ = ref.max_pool2d_forward(x, k, stride, padding)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: ops.max_pool2d(t, k, stride, padding), (x,), dout)[0]
    numeric = numeric_gradient(lambda: ref.max_pool2d_forward(x, k, stride, padding)[0], x, dout)
    assert rel_error(ours, numeric) <= numeric_tolerance(out, dout, ours)


@pytest.mark.parametrize("activation", [None, "relu"])
def test_dense_matches_numeric_autodiff_and_numpy(activation):
    rng = np.random.default_rng(3)
    for x_shape in [(1, 5), (3, 5), (2, 3, 5)]:
        x, w, b = rng.normal(size=x_shape), rng.normal(size=(5, 4)), rng.normal(size=4)
        dout = rng.normal(size=x_shape[:-1] + (4,))
        act = (lambda t: tf.nn.relu(t)) if activation else (lambda t: t)
        ours = tf_gradients(lambda *t: ops.dense(*t, activation=activation), (x, w, b), dout)
        stock = tf_gradients(lambda xx, ww, bb: act(tf.tensordot(xx, ww, 1) + bb), (x, w, b), dout)
        analytic = rounding_tolerance(x, w, dout)
        for o, s in zip(ours, stock):
            assert rel_error(o, s) <= analytic
        if activation is None:
            numpy_grads = ref.affine_backward(dout, (x, w, b))
            out = ref.affine_forward(x, w, b)[0]
            for i, value in enumerate((x, w, b)):
                numeric = numeric_gradient(lambda: ref.affine_forward(x, w, b)[0], value, dout)
                assert rel_error(ours[i], numeric) <= numeric_tolerance(out, dout, ours[i])
                assert rel_error(ours[i], numpy_grads[i]) <= analytic


def test_fused_relu_conv_matches_autodiff():
    rng = np.random.default_rng(4)
    x, w, b = _conv_inputs(rng, (2, 8, 9, 3), 3)
    dout = rng.normal(size=(2, 8, 9, 4))
    ours = tf_gradients(lambda *t: ops.conv2d(*t, padding="same", activation="relu"), (x, w, b), dout)
    stock = tf_gradients(lambda xx, ww, bb: tf.nn.relu(tf.nn.conv2d(xx, ww, 1, "SAME") + bb), (x, w, b), dout)
    for o, s in zip(ours, stock):
        assert rel_error(o, s) <= rounding_tolerance(x, w, dout)


@pytest.mark.parametrize("k,stride,padding", [(5, 1, "same"), (3, 2, "valid"), (1, 2, "same"), (2, 3, "same")])
def test_float32_matches_float64_autodiff(k, stride, padding):
    # The stock reference is float64: TF 2.21's float32 oneDNN backprop-filter
    # for a 1x1 kernel with stride 2 and SAME padding can abort the process.
    rng = np.random.default_rng(5)
    x, w, b = _conv_inputs(rng, (2, 9, 7, 3), k)
    dout = rng.normal(size=ref.conv2d_forward(x, w, b, stride, padding)[0].shape)
    f32 = [v.astype(np.float32) for v in (x, w, b)]
    ours = tf_gradients(lambda *t: ops.conv2d(*t, strides=stride, padding=padding), f32, dout.astype(np.float32))
    stock = tf_gradients(_stock_conv(stride, padding), (x, w, b), dout)
    for o, s in zip(ours, stock):
        assert o.dtype == np.float32
        np.testing.assert_allclose(o, s, rtol=1e-4, atol=1e-4 * np.abs(s).max())


def test_impl_numpy_equals_impl_tf():
    rng = np.random.default_rng(6)
    x, w, b = (v.astype(np.float32) for v in _conv_inputs(rng, (2, 8, 9, 3), 3))
    dout = rng.normal(size=(2, 4, 5, 4)).astype(np.float32)

    def net(impl):
        def f(x, w, b):
            y = ops.conv2d(x, w, b, 2, "same", activation="relu", impl=impl)
            y = ops.max_pool2d(y, 3, 1, "same", impl=impl)
            return ops.dense(y, tf.ones([4, 4]), impl=impl)
        return f

    numpy_grads = tf_gradients(net("numpy"), (x, w, b), dout)
    tf_grads = tf_gradients(net("tf"), (x, w, b), dout)
    for a, c in zip(numpy_grads, tf_grads):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_ops_run_in_every_float_dtype_and_accumulate_weights_in_float32(dtype):
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(8, 6, 6, 3)), dtype=dtype)
    w = tf.constant(rng.normal(size=(3, 3, 3, 4)) * 0.1, dtype=tf.float32 if dtype != "float64" else dtype)
    b = tf.zeros([4], w.dtype)

    @tf.function(jit_compile=True)
    def grads(x, w, b):
        with tf.GradientTape() as tape:
            tape.watch([x, w, b])
            y = ops.max_pool2d(ops.conv2d(x, w, b, 1, "same", activation="relu"), 2)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(loss, [x, w, b])

    dx, dw, db = grads(x, w, b)
    assert dx.dtype == x.dtype and dw.dtype == w.dtype and db.dtype == b.dtype
    x64 = tf.cast(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x64)
        y = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x64, tf.cast(w, tf.float64), 1, "SAME")), 2, 2, "VALID")
        loss = tf.reduce_sum(y)
    expected = tape.gradient(loss, x64)
    tolerance = {"float16": 2e-2, "bfloat16": 1e-1, "float32": 1e-4, "float64": 1e-10}[dtype]
    np.testing.assert_allclose(tf.cast(dx, tf.float64), expected, atol=tolerance * 10, rtol=tolerance)


def test_float16_weight_gradient_does_not_overflow():
    skip_unless_convolutions_run_in("float16")
    # Σ over a large batch exceeds float16's 65,504; dw must stay finite.
    x = tf.fill([512, 4, 4, 1], tf.constant(16.0, tf.float16))
    w = tf.ones([1, 1, 1, 1], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = ops.conv2d(x, w)
    dw = tape.gradient(y, w, output_gradients=tf.fill(y.shape, tf.constant(1.0, tf.float16)))
    assert dw.dtype == tf.float32
    assert float(dw[0, 0, 0, 0]) == 512 * 16 * 16


@pytest.mark.parametrize("shape,k,stride,padding", [
    ((45, 14, 14, 8), 5, 1, "same"),  # 45 x 14 x 14 outputs: 5 chunks of 9
    ((47, 30, 30, 8), 3, 2, "valid"),  # strided (dy filter dilated), 5 chunks of 9-10
])
def test_conv2d_kernel_grad_over_batch_chunks(shape, k, stride, padding):
    # Large batches take the dw path that splits the batch into chunks.
    pads = spatial_padding(shape[1:3], (k, k), (stride, stride), padding)
    plan = plan_kernel_grad(shape, (k, k, shape[3], 4), (stride, stride), pads)
    assert plan.method == "conv" and len(plan.chunks) > 1
    rng = np.random.default_rng(9)
    x, w, b = _conv_inputs(rng, shape, k)
    dout = rng.normal(size=ref.conv2d_forward(x, w, b, stride, padding)[0].shape)
    ours = tf_gradients(lambda *t: ops.conv2d(*t, strides=stride, padding=padding, activation="relu"),
                        (x, w, b), dout)
    stock = tf_gradients(lambda xx, ww, bb: tf.nn.relu(_stock_conv(stride, padding)(xx, ww, bb)),
                         (x, w, b), dout)
    for o, s in zip(ours, stock):
        assert rel_error(o, s) <= rounding_tolerance(x, w, dout)


def test_graph_mode_unknown_batch_and_xla():
    rng = np.random.default_rng(8)
    w = tf.constant(rng.normal(size=(5, 5, 1, 3)), tf.float32)

    def loss_grad(x):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = ops.max_pool2d(ops.conv2d(x, w, None, 2, "same"), 2, padding="same")
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, w])

    spec = tf.TensorSpec([None, 11, 11, 1], tf.float32)
    graph_fn = tf.function(loss_grad, input_signature=[spec])
    xla_fn = tf.function(loss_grad, input_signature=[spec], jit_compile=True)
    for batch in (1, 3):
        x = tf.constant(rng.normal(size=(batch, 11, 11, 1)), tf.float32)
        eager = loss_grad(x)
        for fn in (graph_fn, xla_fn):
            for a, c in zip(eager, fn(x)):
                np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)


def test_ops_reject_bad_arguments_with_clear_errors():
    x = tf.zeros([1, 5, 5, 3])
    with pytest.raises(ValueError, match="C matches the input's channels"):
        ops.conv2d(x, tf.zeros([3, 3, 2, 4]))
    with pytest.raises(ValueError, match="4-D input"):
        ops.conv2d(tf.zeros([5, 5, 3]), tf.zeros([3, 3, 3, 4]))
    with pytest.raises(ValueError, match="padding"):
        ops.max_pool2d(x, padding="full")
    with pytest.raises(ValueError, match="strides"):
        ops.conv2d(x, tf.zeros([3, 3, 3, 4]), strides=0)
    with pytest.raises(ValueError, match="impl"):
        ops.dense(tf.zeros([2, 3]), tf.zeros([3, 4]), impl="torch")
    with pytest.raises(ValueError, match="bias"):
        ops.conv2d(x, tf.zeros([3, 3, 3, 4]), tf.zeros([5]))
    with pytest.raises(ValueError, match="does not fit"):
        ops.conv2d(x, tf.zeros([7, 7, 3, 4]))


def test_mirrored_strategy_runs_hand_written_gradients_on_each_replica():
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from custom_layers import ops
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(size=(4, 6, 6, 2)), tf.float32)
        w0 = rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
        def grad_of(x, w):
            with tf.GradientTape() as tape:
                tape.watch(w)
                y = ops.max_pool2d(ops.conv2d(x, w, None, 1, "same", activation="relu"), 2)
                loss = tf.reduce_sum(y)
            return tape.gradient(loss, w)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            w = tf.Variable(w0)
        dist = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(x).batch(4))
        @tf.function
        def step(batch):
            per_replica = strategy.run(grad_of, args=(batch, w))
            return strategy.reduce("SUM", per_replica, axis=None)
        total = step(next(iter(dist)))
        single = grad_of(x, tf.constant(w0))
        assert strategy.num_replicas_in_sync == 2
        np.testing.assert_allclose(total.numpy(), single.numpy(), rtol=1e-5, atol=1e-5)
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


@pytest.mark.parametrize("pool,stride,padding", [(2, 2, "valid"), (2, 2, "same"), (3, 2, "same"),
                                                 (2, 1, "valid"), (3, 1, "same")])
def test_max_pool2d_routes_nan_and_minus_infinity_windows_as_stock(pool, stride, padding):
    # The documented rule: a row-major scan that moves only to a strictly greater
    # value; all -inf windows send dy to their first cell, NaN compares false.
    rng = np.random.default_rng(pool * 10 + stride)
    x = rng.choice(np.array([-np.inf, np.nan, 0.0, 1.0, 2.0]), size=(2, 5, 6, 3),
                   p=[0.4, 0.2, 0.2, 0.1, 0.1])
    x[0, :3, :3, 0] = -np.inf  # whole windows of -inf
    dout = rng.normal(size=ref.max_pool2d_forward(x, pool, stride, padding)[0].shape)
    (ours,) = tf_gradients(lambda t: ops.max_pool2d(t, pool, stride, padding), (x,), dout)
    (stock,) = tf_gradients(lambda t: tf.nn.max_pool2d(t, pool, stride, padding.upper()), (x,), dout)
    out, cache = ref.max_pool2d_forward(x, pool, stride, padding)
    out_naive, cache_naive = ref.max_pool2d_forward_naive(x, pool, stride, padding)
    # Overlapping windows add their shares in another order: rounding apart, no more.
    for dx in (ours, ref.max_pool2d_backward(dout, cache), ref.max_pool2d_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(dx, stock, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(out, out_naive)
    assert np.count_nonzero(stock) > 0
