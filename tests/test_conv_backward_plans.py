"""Every form of the convolution's dx and dw equals the NumPy reference; the plan's rules."""

import numpy as np
import pytest
import tensorflow as tf

from custom_layers import ops
from custom_layers.ops import convolution as conv
from custom_layers.ops.convolution_backward import conv2d_gradients, plan_backward
from custom_layers.ops.convolution_input_grad import METHODS as DX_METHODS
from custom_layers.ops.convolution_kernel_grad import METHODS as DW_METHODS
from custom_layers.ops.shapes import spatial_padding

# (N, H, W, C, F, KH, KW, SH, SW, padding[, (DH, DW)]): odd sizes, non-square
# kernels and strides, strides larger than the kernel, VALID leftovers, dilation.
CASES = [
    (2, 7, 8, 3, 4, 3, 3, 2, 2, "same"),
    (2, 7, 8, 3, 4, 3, 3, 2, 2, "valid"),
    (2, 9, 9, 8, 5, 5, 5, 2, 2, "same"),
    (1, 10, 11, 8, 3, 7, 7, 2, 2, "same"),
    (2, 7, 9, 8, 3, 3, 2, 3, 2, "valid"),
    (2, 8, 8, 8, 3, 4, 4, 3, 3, "same"),
    (2, 5, 5, 8, 3, 2, 2, 2, 2, "same"),
    (2, 6, 7, 8, 4, 1, 1, 2, 2, "valid"),
    (2, 6, 7, 9, 4, 1, 1, 3, 2, "same"),
    (2, 6, 7, 8, 4, 1, 1, 1, 1, "same"),
    (3, 6, 7, 16, 4, 3, 3, 1, 1, "same"),
    (3, 6, 7, 16, 4, 3, 2, 1, 1, "valid"),
    (2, 11, 10, 16, 3, 3, 3, 1, 1, "same", (2, 2)),
    (2, 12, 9, 8, 3, 3, 2, 1, 1, "valid", (3, 2)),
    (2, 9, 9, 8, 3, 2, 2, 1, 1, "same", (2, 3)),
]


def _applies(dx_method, dw_method, kernel_hw, strides):
    one_by_one = tuple(kernel_hw) == (1, 1)
    return ((dx_method != "gemm" or one_by_one) and (dw_method != "gemm" or one_by_one)
            and (dw_method != "taps" or tuple(strides) == (1, 1)))


def _forced_plan(x_shape, kernel_shape, strides, pads, dx_method, dw_method, dilation=(1, 1)):
    plan = plan_backward(x_shape, kernel_shape, strides, pads, tf.float64, dilation)
    return plan._replace(input_grad=plan.input_grad._replace(method=dx_method),
                         kernel_grad=plan.kernel_grad._replace(method=dw_method))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_every_form_matches_the_numpy_reference(case):
    n, h, w, c, f, kh, kw, sh, sw, padding = case[:10]
    dilation = case[10] if len(case) > 10 else (1, 1)
    rng = np.random.default_rng(sum(case[:9]))
    x = rng.normal(size=(n, h, w, c))
    k = rng.normal(size=(kh, kw, c, f))
    # The reference convolves with the spread kernel; dw is read at its taps.
    spread = conv.spread_kernel(tf.constant(k), dilation).numpy()
    y, cache = conv.conv2d_forward(x, spread, rng.normal(size=f), (sh, sw), padding)
    dy = rng.normal(size=y.shape)
    dx_ref, dw_ref, db_ref = conv.conv2d_backward(dy, cache)
    expected = (dx_ref, dw_ref[:: dilation[0], :: dilation[1]], db_ref)
    pads = spatial_padding((h, w), (kh, kw), (sh, sw), padding, dilation)
    tried = 0
    for dx_method in DX_METHODS:
        for dw_method in DW_METHODS:
            if not _applies(dx_method, dw_method, (kh, kw), (sh, sw)):
                continue
            if dx_method.startswith("subpixel") and dilation != (1, 1):
                continue
            plan = _forced_plan(x.shape, k.shape, (sh, sw), pads, dx_method, dw_method,
                                dilation)
            got = conv2d_gradients(tf.constant(x), tf.constant(y), tf.constant(dy),
                                   tf.constant(k), False, "float64", plan)
            for name, g, e in zip(("dx", "dw", "db"), got, expected):
                np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10,
                                           err_msg=f"{name} of {dx_method}/{dw_method}")
            tried += 1
    assert tried >= 3


@pytest.mark.parametrize("dx_method,dw_method", [("subpixel", "conv"), ("gemm", "gemm"),
                                                 ("full", "taps"), ("subpixel_stacked", "conv"),
                                                 ("fold", "taps")])
def test_forms_under_fused_relu_and_unknown_batch(dx_method, dw_method):
    kernel_hw, strides = {"subpixel": ((3, 3), (2, 2)), "gemm": ((1, 1), (2, 2)),
                          "full": ((3, 3), (1, 1)), "subpixel_stacked": ((5, 4), (3, 2)),
                          "fold": ((3, 2), (1, 1))}[dx_method]
    rng = np.random.default_rng(3)
    k = tf.constant(rng.normal(size=(*kernel_hw, 16, 5)), tf.float32)
    pads = spatial_padding((9, 8), kernel_hw, strides, "same")
    plan = _forced_plan((None, 9, 8, 16), k.shape, strides, pads, dx_method, dw_method)

    @tf.function(input_signature=[tf.TensorSpec([None, 9, 8, 16], tf.float32)] * 1)
    def grads(x):
        y = tf.nn.relu(tf.nn.conv2d(x, k, strides, "SAME"))
        return conv2d_gradients(x, y, tf.ones_like(y), k, True, "float32", plan)

    for batch in (3, 1):
        x = tf.constant(rng.normal(size=(batch, 9, 8, 16)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = tf.nn.relu(tf.nn.conv2d(x, k, strides, "SAME"))
        expected = tape.gradient(y, [x, k])
        dx, dw, db = grads(x)
        np.testing.assert_allclose(dx, expected[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dw, expected[1], rtol=1e-4, atol=1e-4)
        assert db.shape == (5,)


def test_the_plan_follows_its_rules():
    def plan(x_shape, f, k, s, dtype=tf.float32):
        pads = spatial_padding(x_shape[1:3], (k, k), (s, s), "same")
        p = plan_backward(x_shape, (k, k, x_shape[3], f), (s, s), pads, dtype)
        return p.input_grad.method, p.kernel_grad.method

    assert plan((16, 56, 56, 256), 64, 1, 1) == ("gemm", "gemm")
    assert plan((16, 56, 56, 256), 512, 1, 2) == ("gemm", "gemm")
    assert plan((16, 28, 28, 128), 128, 3, 2) == ("subpixel", "conv")
    assert plan((16, 64, 64, 3), 64, 7, 2) == ("subpixel_stacked", "conv_xla")  # thin stem
    assert plan((50, 28, 28, 1), 32, 5, 1) == ("fold", "conv_xla")  # thin first layer
    assert plan((128, 32, 32, 3), 64, 3, 1) == ("fold", "conv_xla")
    assert plan((128, 32, 32, 8), 64, 3, 1)[0] == "full"
    assert plan((16, 56, 56, 64), 64, 3, 1) == ("full", "taps")  # large map, little padding
    assert plan((16, 14, 14, 256), 256, 3, 1) == ("full", "taps")  # large products
    assert plan((256, 16, 16, 64), 128, 3, 1) == ("full", "conv")  # small products
    assert plan((128, 8, 8, 128), 128, 3, 1) == ("full", "conv")  # 8x8: grid 56% larger
    # bfloat16 at stride 1: taps always (the dw convolution was wrong on AMX).
    assert plan((16, 14, 14, 256), 256, 3, 1, tf.bfloat16)[1] == "taps"
    assert plan((16, 32, 32, 16), 16, 3, 1, tf.bfloat16)[1] == "taps"
    assert plan((16, 14, 14, 256), 256, 3, 1, tf.float16)[1] == "conv"
    assert plan((16, 56, 56, 64), 64, 3, 1, tf.float16)[1] == "taps"
    # The dw convolution's batch chunks hold <= 8 KB of dy per output channel.
    pads = spatial_padding((14, 14), (5, 5), (1, 1), "same")
    for dtype, per_chunk in ((tf.float32, 10), (tf.bfloat16, 20)):
        chunks = plan_backward((50, 14, 14, 32), (5, 5, 32, 64), (1, 1), pads, dtype).kernel_grad.chunks
        assert sum(chunks) == 50 and max(chunks) <= per_chunk, chunks


def _backward_products(dtype, kernel_size, strides):
    """(op type, input dtype) of every convolution and matrix product in the backward."""
    x = tf.zeros([4, 12, 12, 16], dtype)
    kernel = tf.zeros([kernel_size, kernel_size, 16, 8], tf.float32)

    @tf.function
    def step(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = ops.conv2d(x, kernel, None, strides, "same")
        return tape.gradient(y, [x, kernel])

    graph = step.get_concrete_function(x, kernel).graph
    found, seen = [], set()

    def walk(g):
        for op in g.get_operations():
            if op.type in ("Conv2D", "MatMul", "BatchMatMulV2") and op.inputs[0].dtype != tf.int32:
                found.append((op.type, op.inputs[0].dtype))
            for attr in ("f", "then_branch", "else_branch", "body"):
                try:
                    name = op.get_attr(attr).name
                except (ValueError, AttributeError):
                    continue
                if name not in seen:
                    seen.add(name)
                    walk(g._get_function(name).graph)

    walk(graph)
    return found


@pytest.mark.parametrize("kernel_size,strides", [(3, 1), (3, 2), (1, 1), (1, 2)])
def test_bfloat16_backward_multiplies_in_bfloat16_and_float16_widens_dw(kernel_size, strides):
    # bfloat16 operands are what AMX and GPUs run fast; float16's dw sum would
    # overflow, so its products for dw are float32.
    products = _backward_products(tf.bfloat16, kernel_size, strides)
    assert len(products) >= 3, products  # forward, dx, dw
    assert {dtype for _, dtype in products} == {tf.bfloat16}, products
    half = _backward_products(tf.float16, kernel_size, strides)
    assert tf.float32 in {dtype for _, dtype in half} and tf.float16 in {d for _, d in half}


def test_strides_and_dilation_together_are_refused():
    with pytest.raises(ValueError, match="strides or dilation_rate above 1, not both"):
        ops.conv2d(tf.zeros([1, 8, 8, 2]), tf.zeros([3, 3, 2, 2]), strides=2, dilation_rate=2)
