"""The NumPy reference: loop form == vectorised form, and both == numeric gradients."""

import itertools

import numpy as np
import pytest

from custom_layers import reference as ref
from custom_layers.gradcheck import numeric_gradient, numeric_tolerance, rel_error

CONV_CASES = list(itertools.product([1, 3, 5], [1, 2, 3], ["valid", "same"]))


@pytest.mark.parametrize("k,stride,padding", CONV_CASES)
def test_conv_loop_equals_vectorised(k, stride, padding):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.normal(size=(2, 7, 6, 3))
    w = rng.normal(size=(k, k, 3, 4))
    b = rng.normal(size=4)
    out_loop, cache_loop = ref.conv2d_forward_naive(x, w, b, stride, padding)
    out_vec, cache_vec = ref.conv2d_forward(x, w, b, stride, padding)
    np.testing.assert_allclose(out_loop, out_vec, rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=out_loop.shape)
    for g_loop, g_vec in zip(ref.conv2d_backward_naive(dout, cache_loop),
                             ref.conv2d_backward(dout, cache_vec)):
        np.testing.assert_allclose(g_loop, g_vec, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,stride,padding", CONV_CASES)
def test_pool_loop_equals_vectorised(k, stride, padding):
    rng = np.random.default_rng(k + stride)
    # Few distinct values: ties everywhere exercise the first-maximum rule.
    x = rng.integers(0, 3, size=(2, 7, 6, 3)).astype(np.float64)
    out_loop, cache_loop = ref.max_pool2d_forward_naive(x, k, stride, padding)
    out_vec, cache_vec = ref.max_pool2d_forward(x, k, stride, padding)
    np.testing.assert_array_equal(out_loop, out_vec)
    dout = rng.normal(size=out_loop.shape)
    np.testing.assert_allclose(ref.max_pool2d_backward_naive(dout, cache_loop),
                               ref.max_pool2d_backward(dout, cache_vec), rtol=1e-12)


def test_same_padding_follows_tensorflow_rule():
    # H=6, K=2, stride 2 -> no padding; H=5, K=4 stride 1 -> 1 before, 2 after.
    x = np.arange(5 * 5, dtype=np.float64).reshape(1, 5, 5, 1)
    out, cache = ref.conv2d_forward(x, np.ones((4, 4, 1, 1)), None, 1, "same")
    pads = cache[4]
    assert (pads[0].before, pads[0].after) == (1, 2)
    assert out.shape == (1, 5, 5, 1)


def test_max_pool_gradient_goes_to_first_maximum_and_overlaps_add():
    x = np.array([[1.0, 5.0, 5.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).reshape(1, 3, 3, 1)
    _, cache = ref.max_pool2d_forward_naive(x, 2, 1, "valid")
    dx = ref.max_pool2d_backward_naive(np.ones((1, 2, 2, 1)), cache)
    # Windows at (0,0) and (0,1) both pick x[0,1] (first 5 in row-major order);
    # window (1,0) picks x[1,0]; window (1,1) ties on zeros and picks x[1,1].
    expected = np.array([[0, 2, 0], [1, 1, 0], [0, 0, 0]], dtype=np.float64)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


@pytest.mark.parametrize("k,stride,padding", [(3, 1, "same"), (5, 2, "valid"), (1, 3, "same")])
def test_conv_reference_matches_numeric_gradient(k, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 7, 5, 2))
    w = rng.normal(size=(k, k, 2, 3))
    b = rng.normal(size=3)
    out, cache = ref.conv2d_forward(x, w, b, stride, padding)
    dout = rng.normal(size=out.shape)
    grads = ref.conv2d_backward(dout, cache)
    for value, grad in zip((x, w, b), grads):
        numeric = numeric_gradient(lambda: ref.conv2d_forward(x, w, b, stride, padding)[0], value, dout)
        assert rel_error(grad, numeric) <= numeric_tolerance(out, dout, grad)


def test_affine_relu_softmax_match_numeric_gradients():
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=(3, 2, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    out, cache = ref.affine_forward_naive(x, w, b)
    np.testing.assert_allclose(out, ref.affine_forward(x, w, b)[0])
    dout = rng.normal(size=out.shape)
    loop_grads = ref.affine_backward_naive(dout, cache)
    for value, grad, vec in zip((x, w, b), loop_grads, ref.affine_backward(dout, cache)):
        np.testing.assert_allclose(grad, vec, rtol=1e-12)
        numeric = numeric_gradient(lambda: ref.affine_forward(x, w, b)[0], value, dout)
        assert rel_error(grad, numeric) <= numeric_tolerance(out, dout, grad)

    logits = rng.normal(size=(4, 6))
    labels = np.array([0, 5, 2, 2])
    loss, dlogits = ref.softmax_loss(logits, labels)
    numeric = numeric_gradient(lambda: np.array(ref.softmax_loss(logits, labels)[0]), logits,
                               np.array(1.0), h=1e-5)
    # Softmax is curved: the O(h^2) = 1e-10 truncation error dominates rounding here.
    assert rel_error(dlogits, numeric) < 1e-7
    assert loss > 0

    y = rng.normal(size=(5, 5))
    y[np.abs(y) < 0.1] = 0.5
    d = rng.normal(size=y.shape)
    numeric = numeric_gradient(lambda: ref.relu_forward(y)[0], y, d)
    grad = ref.relu_backward(d, y)
    assert rel_error(grad, numeric) <= numeric_tolerance(ref.relu_forward(y)[0], d, grad)


def test_reference_rejects_bad_shapes():
    with pytest.raises(ValueError, match="x.shape"):
        ref.conv2d_forward(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 2, 4)), None)
    with pytest.raises(ValueError, match="does not fit"):
        ref.conv2d_forward(np.zeros((1, 2, 2, 1)), np.zeros((3, 3, 1, 1)), None)
    with pytest.raises(ValueError, match="labels"):
        ref.softmax_loss(np.zeros((2, 3)), np.array([0, 3]))



def _grads(result):
    return list(result) if isinstance(result, tuple) else [result]


_RNG = np.random.default_rng(3)
_X, _IDS = _RNG.normal(size=(2, 3, 4, 6)), np.array([[0, 2, -1], [5, 2, -6]])
LOOP_CASES = {  # name: (loop pair, vectorised pair, forward arguments)
    "layer norm, last axis": ("layer_norm", (_X, _RNG.normal(size=6), _RNG.normal(size=6))),
    "layer norm, axes 1, 3": ("layer_norm", (_X, _RNG.normal(size=(3, 6)), None, (1, 3))),
    "layer norm, rms scaling": ("layer_norm", (_X, _RNG.normal(size=(4, 6)), None, (2, 3),
                                               1e-3, True)),
    "group norm, 3 groups": ("group_norm", (_X, _RNG.normal(size=6), _RNG.normal(size=6), 3)),
    "group norm, channels axis 1": ("group_norm", (_X, None, None, 3, 1)),
    "softmax, axes 1, 2": ("softmax", (_X, (1, 2))),
    "embedding, negative ids": ("embedding", (_RNG.normal(size=(6, 3)), _IDS)),
}


@pytest.mark.parametrize("case", sorted(LOOP_CASES))
def test_newer_loop_forms_equal_the_vectorised_ones(case):
    name, args = LOOP_CASES[case]
    naive = getattr(ref, f"{name}_forward_naive"), getattr(ref, f"{name}_backward_naive")
    fast = getattr(ref, f"{name}_forward"), getattr(ref, f"{name}_backward")
    (out_naive, cache_naive), (out_fast, cache_fast) = naive[0](*args), fast[0](*args)
    np.testing.assert_allclose(out_naive, out_fast, rtol=1e-12, atol=1e-12)
    dout = _RNG.normal(size=out_fast.shape)
    pairs = zip(_grads(naive[1](dout, cache_naive)), _grads(fast[1](dout, cache_fast)))
    for a, b in pairs:
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_log_softmax_loop_form_equals_the_vectorised_one():
    out, cache = ref.softmax_forward_naive(_X, -1, log=True)
    out_fast, cache_fast = ref.log_softmax_forward(_X, -1)
    dout = _RNG.normal(size=out.shape)
    np.testing.assert_allclose(out, out_fast, atol=1e-13)
    np.testing.assert_allclose(ref.softmax_backward_naive(dout, cache),
                               ref.log_softmax_backward(dout, cache_fast), atol=1e-13)
