"""Keras's elementwise activations, one rule each: the NumPy reference and the TF op.

Every activation here is a ``Rule``: its NumPy value and gradient (the
textbook derivative, written from x), and for TensorFlow the tensor the
backward keeps (x or y) and the gradient from it. The TF forward is Keras's
own function, so values are stock's bit for bit; one op, ``activation``, turns
any rule into a ``tf.custom_gradient`` function.

    sigmoid       y = 1 / (1 + e⁻ˣ)            dx = dy y (1 − y)
    tanh          y = tanh x                    dx = dy (1 − y²)
    exponential   y = eˣ                        dx = dy y
    softplus      y = log(1 + eˣ)               dx = dy / (1 + e⁻ˣ)
    log_sigmoid   y = −log(1 + e⁻ˣ)             dx = dy / (1 + eˣ)
    softsign      y = x / (1 + |x|)             dx = dy / (1 + |x|)²
    silu (swish)  y = x σ(x)                    dx = dy σ (1 + x (1 − σ))
    mish          y = x tanh(softplus x)        dx = dy (t + x (1 − t²) σ(x))
    elu (α)       y = x > 0 ? x : α (eˣ − 1)    dx = dy (x > 0 ? 1 : α eˣ)
    selu          y = λ elu(x; α)               dx = dy λ (x < 0 ? α eˣ : 1)
    celu (α)      y = max(x, 0) + α (e^(min(x, 0)/α) − 1)
                                                dx = dy ([x ≥ 0] + [x ≤ 0] e^(x/α))
    hard_sigmoid  y = clip(x + 3, 0, 6) / 6     dx = dy / 6 on −3 < x < 3
    hard_silu     y = x hard_sigmoid(x)         dx = dy (hard_sigmoid + x/6 on −3 < x < 3)
    hard_tanh     y = clip(x, −1, 1)            dx = dy on −1 ≤ x ≤ 1
    tanh_shrink   y = x − tanh x                dx = dy tanh² x
    squareplus    y = (x + √(x² + 4)) / 2       dx = dy (1 + x / √(x² + 4)) / 2
    sparse_plus   y = 0, (x + 1)² / 4, x        dx = dy (0, (x + 1) / 2, 1)  (x ≤ −1, < 1, ≥ 1)
    sparse_sigmoid y = clip((x + 1) / 2, 0, 1)  dx = dy / 2 on −1 < x < 1
    soft_shrink   y = x ∓ ½ beyond ±½, else 0   dx = dy on |x| > ½
    hard_shrink   y = x on |x| > ½, else 0      dx = dy on |x| > ½

σ is the sigmoid, t = tanh(softplus x), λ and α SELU's constants. At the kinks
the gradient is the one TensorFlow's autodiff of Keras's expression gives
(celu's is 2 at x = 0 exactly, where both of its branches pass dy), so a
model with these ops trains as stock does. The TF gradients follow the
arithmetic of TensorFlow's gradient kernels (SigmoidGrad's dy·y·(1 − y), ...)
with constants in the input's dtype.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op, normalize_impl, numpy_op

# SELU's λ and α, and their product, as TensorFlow's Selu kernels hold them.
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE_ALPHA = 1.7580993408473768599402175208123


@dataclasses.dataclass(frozen=True)
class Rule:
    """One elementwise activation.

    Attributes:
        value: NumPy ``value(x, **params) -> y``.
        grad: NumPy ``grad(dy, x, **params) -> dx``.
        keeps: "x" or "y", what the TF backward keeps from the forward.
        tf_grad: ``tf_grad(dy, kept, **params) -> dx`` in TensorFlow.
        keras_fn: the ``keras.activations`` function (the TF forward).
        params: the keyword arguments with their Keras defaults.
    """

    value: Callable
    grad: Callable
    keeps: str
    tf_grad: Callable
    keras_fn: Callable
    params: Dict[str, float] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------
# NumPy reference: textbook values and derivatives, from x
# ----------------------------------------------------------------------------


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softplus(x):
    return np.logaddexp(0, x)


def _np_elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _np_hard_sigmoid(x):
    return np.clip(x + 3, 0, 6) / 6


def _np_hard_sigmoid_slope(x):
    return ((x > -3) & (x < 3)) / 6


def _np_mish_grad(dy, x):
    t = np.tanh(_np_softplus(x))
    return dy * (t + x * (1 - t * t) * _np_sigmoid(x))


def _np_silu_grad(dy, x):
    s = _np_sigmoid(x)
    return dy * s * (1 + x * (1 - s))


# ----------------------------------------------------------------------------
# TensorFlow gradients, from what the forward kept
# ----------------------------------------------------------------------------


def _mask(condition, dy):
    return tf.where(condition, dy, tf.zeros([], dy.dtype))


def _tf_elu_grad(dy, x, alpha=1.0):
    e = tf.nn.elu(x)
    if alpha != 1:
        dy = tf.where(x > 0, dy, alpha * dy)
    return tf.where(e < 0, dy * (e + 1), dy)


def _tf_silu_grad(dy, x):
    s = tf.sigmoid(x)
    return dy * (s * (1 + x * (1 - s)))


def _tf_mish_grad(dy, x):
    t = tf.tanh(tf.math.softplus(x))
    return dy * t + x * dy * (1 - t * t) / (tf.exp(-x) + 1)


def _tf_hard_sigmoid_grad(dy, x):
    z = x + 3
    return _mask((z > 0) & (z < 6), dy / 6)


def _tf_hard_silu_grad(dy, x):
    return dy * keras.activations.hard_sigmoid(x) + _tf_hard_sigmoid_grad(x * dy, x)


def _tf_celu_grad(dy, x, alpha=1.0):
    return (_mask(x >= 0, dy)
            + _mask(x <= 0, alpha * dy * tf.exp(tf.minimum(x, 0) / alpha) / alpha))


def _tf_squareplus_grad(dy, x, b=4.0):
    half = dy / 2
    return half + half * 0.5 / tf.sqrt(x * x + b) * (2 * x)


RULES: Dict[str, Rule] = {
    "sigmoid": Rule(
        _np_sigmoid, lambda dy, x: dy * _np_sigmoid(x) * (1 - _np_sigmoid(x)),
        "y", lambda dy, y: dy * y * (1 - y), keras.activations.sigmoid),
    "tanh": Rule(
        np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2),
        "y", lambda dy, y: dy * (1 - y * y), keras.activations.tanh),
    "exponential": Rule(
        np.exp, lambda dy, x: dy * np.exp(x),
        "y", lambda dy, y: dy * y, keras.activations.exponential),
    "softplus": Rule(
        _np_softplus, lambda dy, x: dy * _np_sigmoid(x),
        "x", lambda dy, x: dy / (tf.exp(-x) + 1), keras.activations.softplus),
    "log_sigmoid": Rule(
        lambda x: -_np_softplus(-x), lambda dy, x: dy * _np_sigmoid(-x),
        "x", lambda dy, x: dy / (tf.exp(x) + 1), keras.activations.log_sigmoid),
    "softsign": Rule(
        lambda x: x / (1 + np.abs(x)), lambda dy, x: dy / (1 + np.abs(x)) ** 2,
        "x", lambda dy, x: dy / tf.square(tf.abs(x) + 1), keras.activations.softsign),
    "silu": Rule(
        lambda x: x * _np_sigmoid(x), _np_silu_grad,
        "x", _tf_silu_grad, keras.activations.silu),
    "mish": Rule(
        lambda x: x * np.tanh(_np_softplus(x)), _np_mish_grad,
        "x", _tf_mish_grad, keras.activations.mish),
    "elu": Rule(
        _np_elu, lambda dy, x, alpha=1.0: dy * np.where(x > 0, 1, alpha * np.exp(x)),
        "x", _tf_elu_grad, keras.activations.elu, {"alpha": 1.0}),
    "selu": Rule(
        lambda x: SELU_SCALE * _np_elu(x, SELU_ALPHA),
        lambda dy, x: dy * SELU_SCALE * np.where(x < 0, SELU_ALPHA * np.exp(x), 1),
        "y", lambda dy, y: tf.where(y < 0, dy * (y + _SELU_SCALE_ALPHA), dy * SELU_SCALE),
        keras.activations.selu),
    "celu": Rule(
        lambda x, alpha=1.0: np.maximum(x, 0) + alpha * np.expm1(np.minimum(x, 0) / alpha),
        lambda dy, x, alpha=1.0: dy * ((x >= 0) + (x <= 0) * np.exp(np.minimum(x, 0) / alpha)),
        "x", _tf_celu_grad, keras.activations.celu, {"alpha": 1.0}),
    "hard_sigmoid": Rule(
        _np_hard_sigmoid, lambda dy, x: dy * _np_hard_sigmoid_slope(x),
        "x", _tf_hard_sigmoid_grad, keras.activations.hard_sigmoid),
    "hard_silu": Rule(
        lambda x: x * _np_hard_sigmoid(x),
        lambda dy, x: dy * (_np_hard_sigmoid(x) + x * _np_hard_sigmoid_slope(x)),
        "x", _tf_hard_silu_grad, keras.activations.hard_silu),
    "hard_tanh": Rule(
        lambda x: np.clip(x, -1, 1), lambda dy, x: dy * ((x >= -1) & (x <= 1)),
        "x", lambda dy, x: _mask((x >= -1) & (x <= 1), dy), keras.activations.hard_tanh),
    "tanh_shrink": Rule(
        lambda x: x - np.tanh(x), lambda dy, x: dy * np.tanh(x) ** 2,
        "x", lambda dy, x: dy - dy * (1 - tf.square(tf.tanh(x))), keras.activations.tanh_shrink),
    "squareplus": Rule(
        lambda x: (x + np.sqrt(x * x + 4)) / 2,
        lambda dy, x: dy * (1 + x / np.sqrt(x * x + 4)) / 2,
        "x", _tf_squareplus_grad, keras.activations.squareplus),
    "sparse_plus": Rule(
        lambda x: np.where(x <= -1, 0, np.where(x < 1, (x + 1) ** 2 / 4, x)),
        lambda dy, x: dy * np.where(x <= -1, 0, np.where(x < 1, (x + 1) / 2, 1)),
        "x", lambda dy, x: _mask(x > -1, tf.where(x < 1, dy * (x + 1) / 2, dy)),
        keras.activations.sparse_plus),
    "sparse_sigmoid": Rule(
        lambda x: np.clip((x + 1) / 2, 0, 1), lambda dy, x: dy * ((x > -1) & (x < 1)) / 2,
        "x", lambda dy, x: _mask((x > -1) & (x < 1), dy / 2), keras.activations.sparse_sigmoid),
    "soft_shrink": Rule(
        lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
        lambda dy, x: dy * (np.abs(x) > 0.5),
        "x", lambda dy, x: _mask((x > 0.5) | (x < -0.5), dy), keras.activations.soft_shrink),
    "hard_shrink": Rule(
        lambda x: np.where(np.abs(x) > 0.5, x, 0), lambda dy, x: dy * (np.abs(x) > 0.5),
        "x", lambda dy, x: _mask(tf.abs(x) > 0.5, dy), keras.activations.hard_shrink),
}

# Keras's own aliases.
RULES["swish"] = RULES["silu"]
RULES["hard_swish"] = RULES["hard_silu"]

_BY_FUNCTION = {rule.keras_fn: name for name, rule in RULES.items()}


def rule_name(activation: Callable) -> Optional[str]:
    """The name of the rule computing ``activation`` (a ``keras.activations``
    function), or None."""
    return _BY_FUNCTION.get(activation)


def pointwise_forward(name: str, x: np.ndarray, **params):
    """The reference forward of rule ``name``. Returns out (like x) and the cache (x, params)."""
    rule = _rule(name, params)
    return np.asarray(rule.value(x, **params)).astype(x.dtype), (x, params)


def pointwise_backward(name: str, dout: np.ndarray, cache) -> np.ndarray:
    """The reference backward of rule ``name``: dx = dout · f′(x)."""
    x, params = cache
    return np.asarray(RULES[name].grad(dout, x, **params)).astype(dout.dtype)


def activation(name: str, x: tf.Tensor, impl: str = "tf", **params: float) -> tf.Tensor:
    """``keras.activations.<name>(x, **params)`` with the rule's hand-written gradient.

    Args:
        name: a key of ``RULES`` (Keras's activation name).
        x: any shape, a floating dtype.
        impl: "tf" (default) or "numpy" (the reference through ``tf.numpy_function``).
        **params: the rule's arguments (elu's and celu's ``alpha``).

    Returns:
        y, shaped like x.
    """
    impl = normalize_impl(impl)
    rule = _rule(name, params)
    x = tf.convert_to_tensor(x)
    if impl == "numpy":
        y = numpy_op(f"{name}_numpy", lambda xa: pointwise_forward(name, xa, **params)[0],
                     lambda dy, xa: [pointwise_backward(name, dy, (xa, params))], x.shape, [x])
    else:
        def forward(x):
            y = rule.keras_fn(x, **params)
            return y, (y if rule.keeps == "y" else x)

        def backward(dy, kept):
            # After dy: what the gradient computes from x would otherwise run (and be
            # held) right after the forward.
            with tf.control_dependencies([dy]):
                kept = tf.identity(kept)
            return (rule.tf_grad(dy, kept, **params),)

        y = hand_written_op(forward, backward, x)
    if rule.keras_fn is keras.activations.sigmoid:
        try:  # binary cross-entropy starts from the logits, as after Keras's sigmoid
            y._keras_logits = x
        except AttributeError:  # eager tensors take no attributes
            pass
    return y


def _rule(name: str, params: Dict[str, float]) -> Rule:
    if name not in RULES:
        raise ValueError(f"no hand-written rule for activation {name!r}; "
                         f"the rules are {sorted(RULES)}")
    rule = RULES[name]
    unknown = set(params) - set(rule.params)
    if unknown:
        raise ValueError(f"activation {name!r} takes {sorted(rule.params) or 'no arguments'}. "
                         f"Received: {sorted(unknown)}")
    return rule

