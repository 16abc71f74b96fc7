"""The gradient checks, one per op: hand-written vs numeric, autodiff and NumPy gradients.

The pointwise and shaping ops' checks live in ``pointwise_checks``; ``run_all`` runs both.
"""

from __future__ import annotations

from typing import Dict

import keras
import numpy as np
import tensorflow as tf

from custom_layers.gradcheck.measure import (
    CURVED_NUMERIC_BOUND,
    CURVED_STEP,
    NUMERIC_STEP,
    numeric_gradient,
    tf_gradients,
)
from custom_layers.gradcheck.combining_checks import (
    check_embedding,
    check_group_norm,
    check_layer_norm,
    check_merge,
    check_upsample_nearest,
    check_zero_pad,
)
from custom_layers.gradcheck.pointwise_checks import (
    check_activation,
    check_cross_entropy,
    check_gelu,
    check_glu,
    check_log_softmax,
    check_prelu,
    check_relu,
    check_relu_general,
    check_rescale,
    check_softmax,
    check_zero_pad_shortcut,
    table as _table,
)
from custom_layers.gradcheck.volumetric_checks import check_conv3d, check_pool3d, check_unfold
from custom_layers.ops import affine
from custom_layers.ops import average_pooling as avg_pool
from custom_layers.ops import batch_normalization as norm
from custom_layers.ops import convolution as conv
from custom_layers.ops import depthwise_convolution as depthwise
from custom_layers.ops import global_pooling, inverted_dropout
from custom_layers.ops import max_pooling as max_pool
from custom_layers.ops import pointwise


def check_conv2d(rng: np.random.Generator, strides=1, padding="same") -> Dict[str, Dict[str, float]]:
    """Errors of conv2d's dx/dw/db for a small float64 problem."""
    x = rng.normal(size=(2, 7, 6, 3))
    w = rng.normal(size=(3, 3, 3, 4))
    b = rng.normal(size=(4,))
    out, cache = conv.conv2d_forward(x, w, b, strides, padding)
    dout = rng.normal(size=out.shape)
    numpy_grads = conv.conv2d_backward(dout, cache)
    ours = tf_gradients(lambda *t: conv.conv2d(*t, strides=strides, padding=padding), (x, w, b), dout)
    stock = tf_gradients(
        lambda xx, ww, bb: tf.nn.conv2d(xx, ww, strides, padding.upper()) + bb, (x, w, b), dout
    )
    forward = lambda: conv.conv2d_forward(x, w, b, strides, padding)[0]  # noqa: E731
    numeric = [numeric_gradient(forward, v, dout) for v in (x, w, b)]
    return _table(["dx", "dw", "db"], ours, numeric, stock, numpy_grads, out, dout, (x, w, b))


def check_depthwise_conv2d(rng: np.random.Generator, strides=1, padding="same", dilation=1,
                           multiplier=2) -> Dict[str, Dict[str, float]]:
    """Errors of depthwise_conv2d's dx/dw/db for a small float64 problem."""
    strides, dilation = (strides, strides), (dilation, dilation)
    x = rng.normal(size=(2, 7, 6, 3))
    w = rng.normal(size=(3, 3, 3, multiplier))
    b = rng.normal(size=(3 * multiplier,))
    args = (strides, padding, dilation)
    out, cache = depthwise.depthwise_conv2d_forward(x, w, b, *args)
    dout = rng.normal(size=out.shape)
    numpy_grads = depthwise.depthwise_conv2d_backward(dout, cache)
    ours = tf_gradients(lambda *t: depthwise.depthwise_conv2d(*t, *args), (x, w, b), dout)
    stock = tf_gradients(lambda xx, ww, bb: tf.nn.depthwise_conv2d(
        xx, ww, [1, *strides, 1], padding.upper(), dilations=list(dilation)) + bb, (x, w, b), dout)
    forward = lambda: depthwise.depthwise_conv2d_forward(x, w, b, *args)[0]  # noqa: E731
    numeric = [numeric_gradient(forward, v, dout) for v in (x, w, b)]
    return _table(["dx", "dw", "db"], ours, numeric, stock, numpy_grads, out, dout, (x, w, b))


def check_max_pool2d(rng: np.random.Generator, pool_size=2, strides=None,
                     padding="valid") -> Dict[str, Dict[str, float]]:
    """Errors of max_pool2d's dx (distinct values, so the maximum is unique)."""
    x = rng.permutation(2 * 6 * 6 * 3).reshape(2, 6, 6, 3) / 10.0
    out, cache = max_pool.max_pool2d_forward(x, pool_size, strides, padding)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: max_pool.max_pool2d(t, pool_size, strides, padding), (x,), dout)
    stride = pool_size if strides is None else strides
    stock = tf_gradients(lambda t: tf.nn.max_pool2d(t, pool_size, stride, padding.upper()), (x,), dout)
    forward = lambda: max_pool.max_pool2d_forward(x, pool_size, strides, padding)[0]  # noqa: E731
    numeric = [numeric_gradient(forward, x, dout)]
    return _table(["dx"], ours, numeric, stock, [max_pool.max_pool2d_backward(dout, cache)], out, dout, (x,))


def check_dense(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of dense's dx/dw/db on a rank-3 input."""
    x = rng.normal(size=(2, 3, 5))
    w = rng.normal(size=(5, 4))
    b = rng.normal(size=(4,))
    out, cache = affine.affine_forward(x, w, b)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda *t: affine.dense(*t), (x, w, b), dout)
    stock = tf_gradients(lambda xx, ww, bb: tf.tensordot(xx, ww, 1) + bb, (x, w, b), dout)
    forward = lambda: affine.affine_forward(x, w, b)[0]  # noqa: E731
    numeric = [numeric_gradient(forward, v, dout) for v in (x, w, b)]
    return _table(["dx", "dw", "db"], ours, numeric, stock, affine.affine_backward(dout, cache),
                  out, dout, (x, w, b))


def check_avg_pool2d(rng: np.random.Generator, pool_size=3, strides=2,
                     padding="same") -> Dict[str, Dict[str, float]]:
    """Errors of avg_pool2d's dx (SAME windows at the border average fewer cells)."""
    x = rng.normal(size=(2, 7, 6, 3))
    out, cache = avg_pool.avg_pool2d_forward(x, pool_size, strides, padding)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: avg_pool.avg_pool2d(t, pool_size, strides, padding), (x,), dout)
    stock = tf_gradients(lambda t: tf.nn.avg_pool2d(t, pool_size, strides, padding.upper()), (x,), dout)
    numeric = [numeric_gradient(lambda: avg_pool.avg_pool2d_forward(x, pool_size, strides, padding)[0],
                                x, dout)]
    return _table(["dx"], ours, numeric, stock, [avg_pool.avg_pool2d_backward(dout, cache)], out, dout, (x,))


def check_global_pool(rng: np.random.Generator, kind: str) -> Dict[str, Dict[str, float]]:
    """Errors of global average / max pooling's dx (distinct values: one maximum per channel)."""
    x = rng.permutation(2 * 5 * 4 * 3).reshape(2, 5, 4, 3) / 7.0
    out, cache = global_pooling.global_pool_forward(x, kind)
    dout = rng.normal(size=out.shape)
    op = global_pooling.global_avg_pool if kind == "avg" else global_pooling.global_max_pool
    stock_fn = tf.reduce_mean if kind == "avg" else tf.reduce_max
    ours = tf_gradients(op, (x,), dout)
    stock = tf_gradients(lambda t: stock_fn(t, (1, 2), keepdims=True), (x,), dout)
    numeric = [numeric_gradient(lambda: global_pooling.global_pool_forward(x, kind)[0], x, dout)]
    return _table(["dx"], ours, numeric, stock, [global_pooling.global_pool_backward(dout, cache)], out, dout, (x,))


def check_dropout(rng: np.random.Generator, rate: float = 0.4) -> Dict[str, Dict[str, float]]:
    """Errors of dropout's dx for a fixed keep mask (stock: TensorFlow's own ``where`` autodiff)."""
    x = rng.normal(size=(4, 6))
    keep = rng.uniform(size=x.shape) >= rate
    out, cache = inverted_dropout.dropout_forward(x, keep, rate)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: inverted_dropout.dropout(t, tf.constant(keep), rate), (x,), dout)
    stock = tf_gradients(lambda t: tf.where(keep, t / (1 - rate), 0.0), (x,), dout)
    numeric = [numeric_gradient(lambda: inverted_dropout.dropout_forward(x, keep, rate)[0], x, dout)]
    return _table(["dx"], ours, numeric, stock, [inverted_dropout.dropout_backward(dout, cache)],
                  out, dout, (x,))


def check_batch_norm(rng: np.random.Generator, axis: int = -1,
                     training: bool = True) -> Dict[str, Dict[str, float]]:
    """Errors of batch norm's dx/dgamma/dbeta (NHWC with axis=-1, NCHW with axis=1)."""
    x = rng.normal(size=(4, 3, 5, 3)) * 2.0 + 1.0
    c = x.shape[axis]
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    moving_mean, moving_var = rng.normal(size=c), rng.uniform(0.5, 2.0, size=c)
    epsilon = 1e-3
    out, cache = norm.batch_norm_forward(x, gamma, beta, axis, epsilon, training,
                                              moving_mean, moving_var)
    dout = rng.normal(size=out.shape)
    numpy_grads = norm.batch_norm_backward(dout, cache)
    if training:
        ours = tf_gradients(lambda *t: norm.batch_norm_train(*t, axis, epsilon)[0], (x, gamma, beta), dout)
    else:
        ours = tf_gradients(lambda xx, gg, bb: norm.batch_norm_inference(
            xx, gg, bb, tf.constant(moving_mean), tf.constant(moving_var), axis, epsilon),
            (x, gamma, beta), dout)
    stock_layer = keras.layers.BatchNormalization(axis=axis, epsilon=epsilon, dtype="float64")
    stock_layer.build(x.shape)
    stock_layer.set_weights([gamma, beta, moving_mean, moving_var])
    tensors = [tf.constant(x)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        y = stock_layer(tensors[0], training=training)
    stock = [g.numpy() for g in tape.gradient(
        y, [tensors[0], stock_layer.gamma, stock_layer.beta], output_gradients=tf.constant(dout))]
    forward = lambda: norm.batch_norm_forward(  # noqa: E731
        x, gamma, beta, axis, epsilon, training, moving_mean, moving_var)[0]
    # Inference mode is linear in every input: the usual step and tolerance apply.
    step = CURVED_STEP if training else NUMERIC_STEP
    numeric = [numeric_gradient(forward, v, dout, h=step) for v in (x, gamma, beta)]
    return _table(["dx", "dgamma", "dbeta"], ours, numeric, stock, numpy_grads, out, dout, (x,),
                  numeric_bound=CURVED_NUMERIC_BOUND if training else None)


def run_all(seed: int = 0) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Every check, keyed by a label such as "conv2d stride 2 valid"."""
    rng = np.random.default_rng(seed)
    results = {}
    for strides in (1, 2):
        for padding in ("same", "valid"):
            results[f"conv2d stride {strides} {padding}"] = check_conv2d(rng, strides, padding)
    results["depthwise stride 1 same x2"] = check_depthwise_conv2d(rng)
    results["depthwise stride 2 valid x1"] = check_depthwise_conv2d(rng, 2, "valid", 1, 1)
    results["depthwise dilation 2 same x3"] = check_depthwise_conv2d(rng, 1, "same", 2, 3)
    results["max_pool2d 2x2"] = check_max_pool2d(rng)
    results["max_pool2d 3x3 stride 2 same"] = check_max_pool2d(rng, 3, 2, "same")
    results["dense"] = check_dense(rng)
    results["relu"] = check_relu(rng)
    results["relu (slope, clip, threshold)"] = check_relu_general(rng)
    results["gelu"] = check_gelu(rng, approximate=False)
    results["gelu tanh"] = check_gelu(rng, approximate=True)
    results["softmax"] = check_softmax(rng)
    results["log_softmax axis 1"] = check_log_softmax(rng)
    results["glu"] = check_glu(rng)
    for name, rule in pointwise.RULES.items():
        if rule.keras_fn.__name__ == name:  # not an alias
            results[name] = check_activation(rng, name)
    results["elu alpha 0.5"] = check_activation(rng, "elu", alpha=0.5)
    results["prelu shared axis 1"] = check_prelu(rng)
    results["layer_norm axes 1, 2"] = check_layer_norm(rng)
    results["group_norm 3 groups"] = check_group_norm(rng)
    results["embedding, repeated and negative ids"] = check_embedding(rng)
    for name in ("add", "subtract", "multiply", "maximum", "minimum"):
        results[f"{name}, broadcast"] = check_merge(rng, name)
    results["zero_pad"] = check_zero_pad(rng)
    results["upsample_nearest 2x3"] = check_upsample_nearest(rng)
    results["unfold 3 taps, stride 2, dilation 2"] = check_unfold(rng)
    results["conv3d strides (2, 1, 2) same"] = check_conv3d(rng)
    results["max_pool3d (3, 2, 3) strides (2, 1, 2) same"] = check_pool3d(rng, "max")
    results["avg_pool3d (3, 2, 3) strides (2, 1, 2) same"] = check_pool3d(rng, "avg")
    results["rescale"] = check_rescale(rng)
    results["zero_pad_shortcut stride 2"] = check_zero_pad_shortcut(rng)
    results["cross-entropy from logits"] = check_cross_entropy(rng, True)
    results["cross-entropy from probs"] = check_cross_entropy(rng, False)
    results["cross-entropy from logits, smoothing 0.2"] = check_cross_entropy(rng, True, 0.2)
    results["cross-entropy from probs, smoothing 0.2"] = check_cross_entropy(rng, False, 0.2)
    results["avg_pool2d 3x3 stride 2 same"] = check_avg_pool2d(rng)
    results["avg_pool2d 2x2 valid"] = check_avg_pool2d(rng, 2, 2, "valid")
    results["global_avg_pool"] = check_global_pool(rng, "avg")
    results["global_max_pool"] = check_global_pool(rng, "max")
    results["dropout"] = check_dropout(rng)
    results["batch_norm train NHWC"] = check_batch_norm(rng, axis=-1, training=True)
    results["batch_norm train NCHW"] = check_batch_norm(rng, axis=1, training=True)
    results["batch_norm inference NHWC"] = check_batch_norm(rng, axis=-1, training=False)
    return results
