"""How gradients are compared: a normwise error, bounds from float64 rounding, numeric gradients.

Errors are normwise, ``max |a - b| / max(|a|, |b|)`` over the whole tensor
(as TensorFlow's ``compute_gradient_error`` measures them): an element-wise
ratio divides by entries near zero, where rounding differences between CPUs
decide the result. The bounds are derived from float64 rounding and the
problem's size, not constants tuned to one machine. Used by
``custom_layers.gradcheck.checks`` and the tests.
"""

from __future__ import annotations

from typing import Callable, List, Sequence

import numpy as np
import tensorflow as tf

FLOAT64_EPS = float(np.finfo(np.float64).eps)
# Headroom over the rounding bounds below, for constant factors they leave out.
SAFETY = 16
# Conv, pooling and dense are piecewise linear: a larger step has no truncation
# error there and divides the round-off of the difference by less.
NUMERIC_STEP = 1e-3
# Batch norm is curved: a smaller step trades truncation error O(h^2) for
# round-off; the result is held to the fixed bound below instead of
# ``numeric_tolerance``, which assumes no truncation error.
CURVED_STEP = 1e-4
CURVED_NUMERIC_BOUND = 1e-7


def rel_error(a, b) -> float:
    """``max |a - b| / max(|a|, |b|)`` over the whole tensor; 0 when both are zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(a - b), initial=0.0) / scale) if scale else 0.0


def rounding_tolerance(*arrays) -> float:
    """Normwise bound for two float64 computations of the same gradient in another order.

    A sum of n products in another order differs by at most ~n·eps relative
    to the sum of their magnitudes, which is at most ~sqrt(n) times the
    largest result for data of mixed signs: hence n^1.5·eps, with n the size
    of the largest tensor involved.
    """
    n = max(np.size(a) for a in arrays)
    return SAFETY * n ** 1.5 * FLOAT64_EPS


def numeric_tolerance(out, dout, grad, h: float = NUMERIC_STEP) -> float:
    """Normwise bound for a centred-difference gradient of ``sum(out * dout)`` vs the exact one.

    Each evaluation of the sum is off by ~eps·Σ|out·dout|; the difference of
    two divided by 2h is off by ~eps·Σ|out·dout|/h (no truncation error for
    piecewise-linear ops), relative to the gradient's largest entry.
    """
    scale = np.max(np.abs(grad), initial=0.0)
    absolute = SAFETY * FLOAT64_EPS * float(np.sum(np.abs(np.asarray(out) * np.asarray(dout)))) / h
    return absolute / scale if scale else absolute


def numeric_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray,
                     h: float = NUMERIC_STEP) -> np.ndarray:
    """Centred differences of ``sum(f() * dout)`` with respect to ``x``.

    ``f`` reads ``x``, which is perturbed in place one element at a time.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f() * dout)
        x[i] = old - h
        minus = np.sum(f() * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def tf_gradients(fn: Callable[..., tf.Tensor], inputs: Sequence[np.ndarray],
                 dout: np.ndarray) -> List[np.ndarray]:
    """Gradients of ``sum(fn(*inputs) * dout)`` with respect to every input (dense,
    ``tf.IndexedSlices`` summed into place)."""
    tensors = [tf.constant(v) for v in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        out = fn(*tensors)
    grads = tape.gradient(out, tensors, output_gradients=tf.constant(dout))
    return [tf.convert_to_tensor(g).numpy() for g in grads]
