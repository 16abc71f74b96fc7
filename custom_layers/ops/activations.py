"""ReLU and GELU: the NumPy reference and the TF ops with hand-written gradients.

    relu     y = max(x, 0)                 dx = dy where y > 0 (0 at x = 0)
    relu with Keras's negative_slope a, max_value m, threshold t (``keras.activations.relu``):
             y = x for t < x (clipped to [0, m]), a (x − t) below t
                                           dx = dy ([x > t] [0 ≤ x ≤ m] + a [x < t]);
             relu6 (m = 6, t = 0) passes 0 < x < 6, leaky ReLU (a only) dy · (x > 0 ? 1 : a)
    gelu     y = x Φ(x)                    dx = dy (Φ(x) + x φ(x))
    gelu, approximate: y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
                                           dx = dy (½(1 + tanh u) + ½x(1 − tanh²u) u′)

Φ and φ are the standard normal's distribution and density; the two GELU
forms are ``keras.activations.gelu``'s (``approximate=False`` / ``True``).

Conv and dense fuse the ReLU into their own ops (``activate`` in the forward,
``relu_mask`` at the start of their backward).
"""

from __future__ import annotations

from typing import Optional

import math

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op, normalize_impl, numpy_op

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def relu_forward(x: np.ndarray):
    """ReLU. Returns out (same shape as x) and the cache (x)."""
    return np.maximum(x, 0), x


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dout where x > 0, else 0 (the subgradient at 0 is taken as 0)."""
    return np.where(cache > 0, dout, 0).astype(dout.dtype)


def relu_general_forward(x: np.ndarray, negative_slope: float = 0.0,
                         max_value: Optional[float] = None, threshold: float = 0.0):
    """``keras.activations.relu`` with its three arguments. Returns out and the cache (x, arguments)."""
    out = np.where(x > threshold, x, 0)
    if max_value is not None:
        out = np.clip(out, 0, max_value)
    out = out - negative_slope * np.maximum(threshold - x, 0)
    return out.astype(x.dtype), (x, negative_slope, max_value, threshold)


def relu_general_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout · ([x > t] [0 ≤ x ≤ m] + a [x < t]), with relu6's and leaky ReLU's
    kinks as TensorFlow's kernels take them (see the module doc)."""
    x, a, m, t = cache
    return (dout * _relu_slope_numpy(x, a, m, t)).astype(dout.dtype)


def _relu_slope_numpy(x, a, m, t):
    if a != 0 and m is None and t == 0:
        return np.where(x > 0, 1.0, a)
    if t == 0 and m == 6:
        passes = (x > 0) & (x < 6)
    else:
        passes = x > t
        if m is not None:
            passes &= (x >= 0) & (x <= m)
    return passes + a * (x < t)


_TANH_SCALE = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715


def _erf(x: np.ndarray) -> np.ndarray:
    # math.erf element by element: exact to float64, and NumPy has no erf of its own.
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def gelu_forward(x: np.ndarray, approximate: bool = False):
    """GELU, exact (erf) or tanh form. Returns out (like x) and the cache (x, approximate)."""
    if approximate:
        out = 0.5 * x * (1 + np.tanh(_TANH_SCALE * (x + _TANH_CUBIC * x ** 3)))
    else:
        out = 0.5 * x * (1 + _erf(x / math.sqrt(2.0)))
    return out.astype(x.dtype), (x, approximate)


def gelu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout · GELU′(x), for the form the forward used."""
    x, approximate = cache
    if approximate:
        t = np.tanh(_TANH_SCALE * (x + _TANH_CUBIC * x ** 3))
        du = _TANH_SCALE * (1 + 3 * _TANH_CUBIC * x ** 2)
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * du
    else:
        slope = 0.5 * (1 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x ** 2) / math.sqrt(2 * math.pi)
    return (dout * slope).astype(dout.dtype)


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


def relu_mask(y: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """ReLU backward from the output: dy where y is positive, else 0."""
    return tf.where(y > 0, dy, tf.zeros([], dy.dtype))


# One fused XLA loop instead of a compare and a select over the tensor.
_relu_grad = tf.function(relu_mask, jit_compile=True)


def relu(x: tf.Tensor, impl: str = "tf") -> tf.Tensor:
    """max(x, 0) with a hand-written gradient: dx = dy where the output is > 0."""
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    if impl == "numpy":
        return numpy_op(
            "relu_numpy",
            lambda xa: relu_forward(xa)[0],
            lambda dy, xa: [relu_backward(dy, xa)],
            x.shape, [x],
        )

    return hand_written_op(_relu_forward, _relu_backward, x)


def _relu_forward(x: tf.Tensor):
    y = tf.maximum(x, tf.zeros([], x.dtype))
    return y, y


def _relu_backward(dy: tf.Tensor, y: tf.Tensor):
    return (_relu_grad(y, dy),)


def relu_general(x: tf.Tensor, negative_slope: float = 0.0, max_value: Optional[float] = None,
                 threshold: float = 0.0, impl: str = "tf") -> tf.Tensor:
    """``keras.activations.relu(x, negative_slope, max_value, threshold)`` with a
    hand-written gradient (module doc); at the defaults, ``relu`` itself."""
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    if negative_slope == 0 and max_value is None and threshold == 0:
        return relu(x, impl)
    if impl == "numpy":
        args = (negative_slope, max_value, threshold)
        return numpy_op(
            "relu_general_numpy",
            lambda xa: relu_general_forward(xa, *args)[0],
            lambda dy, xa: [relu_general_backward(dy, (xa, *args))],
            x.shape, [x],
        )

    def forward(x):
        # Keras's own expression, so the values are stock's bit for bit.
        return keras.activations.relu(x, negative_slope, max_value, threshold), x

    def backward(dy, x):
        return (_relu_general_grad(x, dy, float(negative_slope),
                                   None if max_value is None else float(max_value),
                                   float(threshold)),)

    return hand_written_op(forward, backward, x)


@tf.function(jit_compile=True)
def _relu_general_grad(x, dy, a: float, m: Optional[float], t: float):
    # Constants in x's dtype, as Keras compares them (0.1 is not 0.1 in bfloat16).
    def const(v):
        return tf.constant(v, x.dtype)
    if a != 0 and m is None and t == 0:
        # tf.nn.leaky_relu holds its slope as a float32 attribute: the forward's slope.
        return dy * tf.where(x > 0, const(1.0), const(float(np.float32(a))))
    if t == 0 and m == 6:
        passes = (x > 0) & (x < 6)
    else:
        passes = x > const(t)
        if m is not None:
            passes &= (x >= 0) & (x <= const(m))
    slope = tf.cast(passes, dy.dtype)
    if a != 0:
        slope += tf.cast(x < const(t), dy.dtype) * const(a)
    return dy * slope


def gelu(x: tf.Tensor, approximate: bool = False, impl: str = "tf") -> tf.Tensor:
    """GELU (``approximate``: the tanh form) with a hand-written gradient; see the module doc."""
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    if not isinstance(approximate, bool):
        raise ValueError(f"approximate must be True or False. Received: {approximate!r}")
    if impl == "numpy":
        return numpy_op(
            "gelu_numpy",
            lambda xa: gelu_forward(xa, approximate)[0],
            lambda dy, xa: [gelu_backward(dy, (xa, approximate))],
            x.shape, [x],
        )

    def forward(x):
        return _gelu_value(x, approximate), x

    def backward(dy, x):
        # After dy: a slope computed from x alone would be run (and held) right after the forward.
        with tf.control_dependencies([dy]):
            x = tf.identity(x)
        return (dy * _gelu_slope(x, approximate),)

    return hand_written_op(forward, backward, x)


def _gelu_value(x: tf.Tensor, approximate: bool) -> tf.Tensor:
    """``tf.nn.gelu``'s expression with its constants in x's own dtype: bit for bit
    stock's in float32 and below, while tf.nn.gelu casts them through float32 and
    so in float64 computes a GELU off by ~5e-9 (its autodiff likewise)."""
    if approximate:
        return 0.5 * x * (1.0 + tf.tanh(_TANH_SCALE * (x + _TANH_CUBIC * tf.pow(x, 3))))
    return 0.5 * x * tf.math.erfc(-x * (1 / math.sqrt(2.0)))


def _gelu_slope(x: tf.Tensor, approximate: bool) -> tf.Tensor:
    if approximate:
        t = tf.tanh(_TANH_SCALE * (x + _TANH_CUBIC * x * x * x))
        du = _TANH_SCALE * (1 + 3 * _TANH_CUBIC * x * x)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
    phi = tf.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return 0.5 * (1 + tf.math.erf(x * (1 / math.sqrt(2.0)))) + x * phi


def activate(y: tf.Tensor, activation: Optional[str]) -> tf.Tensor:
    """The fused activation of a conv/dense forward (None or "relu")."""
    # Plain tf.nn ops in the forward let Grappler fuse MatMul/Conv2D + BiasAdd
    # + Relu into one oneDNN call, as it does for stock Keras layers.
    return tf.nn.relu(y) if activation == "relu" else y


def activate_numpy(y: tf.Tensor, activation: Optional[str]) -> tf.Tensor:
    """``activate`` for ``impl="numpy"``: the reference ReLU as its own op."""
    return relu(y, impl="numpy") if activation == "relu" else y

