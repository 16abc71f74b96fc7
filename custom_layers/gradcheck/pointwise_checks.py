"""Gradient checks of the pointwise and shaping ops (activations, losses, rescaling,
the residual shortcut), and the error table every check returns."""

from __future__ import annotations

from typing import Dict

import keras
import numpy as np
import tensorflow as tf

from custom_layers.gradcheck.measure import (
    CURVED_NUMERIC_BOUND,
    CURVED_STEP,
    numeric_gradient,
    numeric_tolerance,
    rel_error,
    rounding_tolerance,
    tf_gradients,
)
from custom_layers.ops import activations, gated_linear_unit, rescaling
from custom_layers.ops import pointwise
from custom_layers.ops import parametric_relu as prelu_ops
from custom_layers.ops import normalized_exponential as softmax_ops
from custom_layers.ops import zero_pad_shortcut as shortcut_ops  # noqa: F401
from custom_layers.ops.zero_pad_shortcut import (zero_pad_shortcut_backward,
                                                 zero_pad_shortcut_forward)
from custom_layers.ops import cross_entropy as losses


def check_relu(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of relu's dx (inputs kept away from the kink at 0)."""
    x = rng.normal(size=(4, 5))
    x[np.abs(x) < 0.1] += 0.2
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(activations.relu, (x,), dout)
    stock = tf_gradients(tf.nn.relu, (x,), dout)
    out = activations.relu_forward(x)[0]
    numeric = [numeric_gradient(lambda: activations.relu_forward(x)[0], x, dout)]
    return table(["dx"], ours, numeric, stock, [activations.relu_backward(dout, x)], out, dout, (x,))


def check_relu_general(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of dx of Keras's relu with all three arguments (slope 0.3, clip 4,
    threshold 0.5), inputs kept away from its kinks at 0.5, 0 and 4."""
    args = (0.3, 4.0, 0.5)
    x = rng.normal(size=(4, 5)) * 3
    for kink in (0.0, 0.5, 4.0):
        x[np.abs(x - kink) < 0.1] += 0.2
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(lambda t: activations.relu_general(t, *args), (x,), dout)
    stock = tf_gradients(lambda t: keras.activations.relu(t, *args), (x,), dout)
    out, cache = activations.relu_general_forward(x, *args)
    numeric = [numeric_gradient(lambda: activations.relu_general_forward(x, *args)[0], x, dout)]
    return table(["dx"], ours, numeric, stock, [activations.relu_general_backward(dout, cache)],
                 out, dout, (x,))


def check_cross_entropy(rng: np.random.Generator, from_logits: bool,
                        label_smoothing: float = 0.0) -> Dict[str, Dict[str, float]]:
    """Errors of the sparse cross-entropy's gradient (logits, or clipped probabilities);
    with label smoothing, stock is the categorical loss on one-hot labels."""
    labels = rng.integers(0, 6, size=5)
    eps = keras.config.epsilon()
    if from_logits:
        x = rng.normal(size=(5, 6)) * 2
        op = lambda y, t: losses.sparse_softmax_cross_entropy(  # noqa: E731
            y, t, label_smoothing=label_smoothing)
        reference_loss = lambda z, y: losses.softmax_loss(z, y, label_smoothing)  # noqa: E731
    else:
        # Kept away from 0, where log's third derivative would swamp the differences.
        x = rng.uniform(0.2, 1.0, size=(5, 6))
        x /= x.sum(axis=1, keepdims=True)
        op = lambda y, t: losses.sparse_probability_cross_entropy(  # noqa: E731
            y, t, label_smoothing=label_smoothing)
        reference_loss = lambda p, y: losses.probability_loss(p, y, eps, label_smoothing)  # noqa: E731
    dout = np.array(1.0)
    ours = tf_gradients(lambda t: op(labels, t), (x,), dout)
    onehot = np.eye(6)[labels]
    stock = tf_gradients(lambda t: keras.losses.CategoricalCrossentropy(
        from_logits=from_logits, label_smoothing=label_smoothing, dtype="float64")(onehot, t),
        (x,), dout)
    loss, grad = reference_loss(x, labels)
    # The loss is curved: the curvature bound, as for batch norm, with a step
    # small enough for log's curvature at probabilities ≥ 0.03.
    numeric = [numeric_gradient(lambda: np.array(reference_loss(x, labels)[0]), x, dout,
                                CURVED_STEP if from_logits else 1e-6)]
    return table(["dx"], ours, numeric, stock, [grad], np.array(loss), dout, (x,),
                  CURVED_NUMERIC_BOUND)


def check_softmax(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of softmax's dz (NumPy: y ⊙ (dy − Σ dy ⊙ y))."""
    z = rng.normal(size=(4, 6))
    dout = rng.normal(size=z.shape)
    y, cache = softmax_ops.softmax_forward(z)
    numpy_grad = softmax_ops.softmax_backward(dout, cache)
    ours = tf_gradients(softmax_ops.softmax, (z,), dout)
    stock = tf_gradients(tf.nn.softmax, (z,), dout)
    numeric = [numeric_gradient(lambda: softmax_ops.softmax_forward(z)[0], z, dout, CURVED_STEP)]
    return table(["dz"], ours, numeric, stock, [numpy_grad], y, dout, (z,), CURVED_NUMERIC_BOUND)



# Where the piecewise rules change branch: inputs are kept 0.1 away from them.
KINKS = (-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0)


def _away_from_kinks(x: np.ndarray) -> np.ndarray:
    for kink in KINKS:
        x[np.abs(x - kink) < 0.1] += 0.2
    return x


def check_activation(rng: np.random.Generator, name: str, **params) -> Dict[str, Dict[str, float]]:
    """Errors of dx of one elementwise rule of ``ops.pointwise`` against TensorFlow's
    autodiff of Keras's function (inputs away from the kinks)."""
    x = _away_from_kinks(rng.normal(size=(4, 5)) * 2)
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(lambda t: pointwise.activation(name, t, **params), (x,), dout)
    stock = tf_gradients(lambda t: pointwise.RULES[name].keras_fn(t, **params), (x,), dout)
    out, cache = pointwise.pointwise_forward(name, x, **params)
    numeric = [numeric_gradient(lambda: pointwise.pointwise_forward(name, x, **params)[0], x,
                                dout, CURVED_STEP)]
    return table(["dx"], ours, numeric, stock, [pointwise.pointwise_backward(name, dout, cache)],
                 out, dout, (x,), CURVED_NUMERIC_BOUND)


def check_log_softmax(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of log-softmax's dz over axis 1 of a 3-D input (NumPy: dy − e^y Σ dy)."""
    z = rng.normal(size=(2, 5, 3))
    dout = rng.normal(size=z.shape)
    y, cache = softmax_ops.log_softmax_forward(z, axis=1)
    ours = tf_gradients(lambda t: softmax_ops.log_softmax(t, 1), (z,), dout)
    stock = tf_gradients(lambda t: tf.nn.log_softmax(t, axis=1), (z,), dout)
    numeric = [numeric_gradient(lambda: softmax_ops.log_softmax_forward(z, 1)[0], z, dout,
                                CURVED_STEP)]
    return table(["dz"], ours, numeric, stock, [softmax_ops.log_softmax_backward(dout, cache)],
                 y, dout, (z,), CURVED_NUMERIC_BOUND)


def check_glu(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of the gated linear unit's dx, its 6 channels split into 3 and 3."""
    x = rng.normal(size=(2, 4, 6))
    y, cache = gated_linear_unit.glu_forward(x)
    dout = rng.normal(size=y.shape)
    ours = tf_gradients(gated_linear_unit.glu, (x,), dout)
    stock = tf_gradients(keras.activations.glu, (x,), dout)
    numeric = [numeric_gradient(lambda: gated_linear_unit.glu_forward(x)[0], x, dout,
                                CURVED_STEP)]
    return table(["dx"], ours, numeric, stock, [gated_linear_unit.glu_backward(dout, cache)],
                 y, dout, (x,), CURVED_NUMERIC_BOUND)


def check_prelu(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of PReLU's dx and dα, α shared over the second axis (Keras's expression as stock)."""
    x = _away_from_kinks(rng.normal(size=(3, 4, 5)))
    alpha = rng.normal(size=(1, 5)) * 0.3
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(prelu_ops.prelu, (x, alpha), dout)
    stock = tf_gradients(lambda t, a: tf.nn.relu(t) - a * tf.nn.relu(-t), (x, alpha), dout)
    out, cache = prelu_ops.prelu_forward(x, alpha)
    numeric = [numeric_gradient(lambda: prelu_ops.prelu_forward(x, alpha)[0], v, dout)
               for v in (x, alpha)]
    return table(["dx", "dalpha"], ours, numeric, stock,
                 list(prelu_ops.prelu_backward(dout, cache)), out, dout, (x, alpha))

def check_gelu(rng: np.random.Generator, approximate: bool) -> Dict[str, Dict[str, float]]:
    """Errors of gelu's dx (exact or tanh form) against TensorFlow's autodiff of the same function."""
    x = rng.normal(size=(4, 5)) * 2
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(lambda t: activations.gelu(t, approximate), (x,), dout)
    # TensorFlow's autodiff of GELU with float64 constants (keras.activations.gelu
    # rounds them to float32: a ~5e-9 different function in float64).
    stock = tf_gradients(lambda t: activations._gelu_value(t, approximate), (x,), dout)
    out, cache = activations.gelu_forward(x, approximate)
    numeric = [numeric_gradient(lambda: activations.gelu_forward(x, approximate)[0], x, dout,
                                CURVED_STEP)]
    return table(["dx"], ours, numeric, stock, [activations.gelu_backward(dout, cache)], out,
                 dout, (x,), CURVED_NUMERIC_BOUND)


def check_rescale(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of rescale's dx with per-channel constants."""
    x = rng.normal(size=(2, 3, 4))
    scale, offset = rng.normal(size=(4,)), rng.normal(size=(4,))
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(lambda t: rescaling.rescale(t, scale, offset), (x,), dout)
    stock = tf_gradients(lambda t: t * scale + offset, (x,), dout)
    out, cache = rescaling.rescale_forward(x, scale, offset)
    numeric = [numeric_gradient(lambda: rescaling.rescale_forward(x, scale, offset)[0], x, dout)]
    return table(["dx"], ours, numeric, stock, [rescaling.rescale_backward(dout, cache)], out,
                 dout, (x,))


def check_zero_pad_shortcut(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of the option-A shortcut's dx (stride 2, odd sizes, 3 -> 5 channels)."""
    x = rng.normal(size=(2, 5, 6, 3))
    out, cache = zero_pad_shortcut_forward(x, 5, 2)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: shortcut_ops(t, 5, 2), (x,), dout)
    stock = tf_gradients(lambda t: tf.pad(t[:, ::2, ::2, :], [[0, 0]] * 3 + [[0, 2]]), (x,), dout)
    numeric = [numeric_gradient(
        lambda: zero_pad_shortcut_forward(x, 5, 2)[0], x, dout)]
    return table(["dx"], ours, numeric, stock,
                 [zero_pad_shortcut_backward(dout, cache)], out, dout, (x,))


def table(names, ours, numeric, stock, numpy_grads, out, dout, inputs, numeric_bound=None):
    """{gradient: {reference: (error, tolerance)}} for one op.

    ``numeric_bound`` replaces ``numeric_tolerance`` for curved ops.
    """
    analytic = rounding_tolerance(out, *inputs)
    return {
        name: {
            "numeric": (rel_error(o, n), numeric_bound or numeric_tolerance(out, dout, o)),
            "autodiff": (rel_error(o, s), analytic),
            "numpy": (rel_error(o, r), analytic),
        }
        for name, o, n, s, r in zip(names, ours, numeric, stock, numpy_grads)
    }
