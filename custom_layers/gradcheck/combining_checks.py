"""Gradient checks of the ops that combine or reshape with arithmetic: layer norm,
the merge pairs and concatenation, zero padding and upsampling; and the embedding
lookup."""

from __future__ import annotations

from typing import Dict

import keras
import numpy as np
import tensorflow as tf

from custom_layers.gradcheck.measure import (CURVED_NUMERIC_BOUND, CURVED_STEP, numeric_gradient,
                                             tf_gradients)
from custom_layers.gradcheck.pointwise_checks import table
from custom_layers.ops import embedding_lookup
from custom_layers.ops import group_normalization as gn
from custom_layers.ops import layer_normalization as ln
from custom_layers.ops import merging, padding, upsampling


def check_layer_norm(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of layer norm's dx, dγ, dβ over axes (1, 2) of a 3-D input."""
    x, gamma, beta = rng.normal(size=(3, 4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(lambda t, g, b: ln.layer_norm(t, g, b, (1, 2)), (x, gamma, beta), dout)
    stock = tf_gradients(lambda t, g, b: keras.ops.layer_normalization(t, g, b, (1, 2), 1e-3),
                         (x, gamma, beta), dout)
    out, cache = ln.layer_norm_forward(x, gamma, beta, (1, 2))
    numeric = [numeric_gradient(lambda: ln.layer_norm_forward(x, gamma, beta, (1, 2))[0], v, dout,
                                CURVED_STEP) for v in (x, gamma, beta)]
    return table(["dx", "dgamma", "dbeta"], ours, numeric, stock,
                 list(ln.layer_norm_backward(dout, cache)), out, dout, (x, gamma, beta),
                 CURVED_NUMERIC_BOUND)


def _keras_group_norm(x, gamma, beta, groups: int):
    """``keras.layers.GroupNormalization``'s arithmetic (channels last), for autodiff."""
    shape = [*x.shape[:-1], groups, x.shape[-1] // groups]
    xg = keras.ops.reshape(x, shape)
    mean, variance = keras.ops.moments(xg, axes=list(range(1, len(shape) - 2)) + [len(shape) - 1],
                                       keepdims=True)
    inv = keras.ops.rsqrt(variance + 1e-3) * keras.ops.reshape(gamma, shape[-2:])
    return keras.ops.reshape(xg * inv - mean * inv + keras.ops.reshape(beta, shape[-2:]), x.shape)


def check_group_norm(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of group norm's dx, dγ, dβ: 6 channels of a 3-D input in 3 groups."""
    x, gamma, beta = rng.normal(size=(2, 4, 6)), rng.normal(size=6), rng.normal(size=6)
    dout = rng.normal(size=x.shape)
    ours = tf_gradients(lambda t, g, b: gn.group_norm(t, g, b, 3), (x, gamma, beta), dout)
    stock = tf_gradients(lambda t, g, b: _keras_group_norm(t, g, b, 3), (x, gamma, beta), dout)
    out, cache = gn.group_norm_forward(x, gamma, beta, 3)
    numeric = [numeric_gradient(lambda: gn.group_norm_forward(x, gamma, beta, 3)[0], v, dout,
                                CURVED_STEP) for v in (x, gamma, beta)]
    return table(["dx", "dgamma", "dbeta"], ours, numeric, stock,
                 list(gn.group_norm_backward(dout, cache)), out, dout, (x, gamma, beta),
                 CURVED_NUMERIC_BOUND)


def check_merge(rng: np.random.Generator, name: str) -> Dict[str, Dict[str, float]]:
    """Errors of a merge pair's da and db, b broadcast over the middle axis."""
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 1, 4))
    dout = rng.normal(size=a.shape)
    ours = tf_gradients(getattr(merging, name), (a, b), dout)
    stock = tf_gradients(getattr(tf.math, name), (a, b), dout)
    out, cache = merging.pair_forward(name, a, b)
    numeric = [numeric_gradient(lambda: merging.pair_forward(name, a, b)[0], v, dout)
               for v in (a, b)]
    return table(["da", "db"], ours, numeric, stock, list(merging.pair_backward(name, dout, cache)),
                 out, dout, (a, b))


def check_zero_pad(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of zero padding's dx (uneven padding on two axes)."""
    x = rng.normal(size=(2, 3, 4, 2))
    pads = [(0, 0), (1, 2), (0, 3), (0, 0)]
    out, cache = padding.zero_pad_forward(x, pads)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: padding.zero_pad(t, pads), (x,), dout)
    stock = tf_gradients(lambda t: tf.pad(t, pads), (x,), dout)
    numeric = [numeric_gradient(lambda: padding.zero_pad_forward(x, pads)[0], x, dout)]
    return table(["dx"], ours, numeric, stock, [padding.zero_pad_backward(dout, cache)], out,
                 dout, (x,))


def check_upsample_nearest(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of nearest upsampling's dx, factors (2, 3)."""
    x = rng.normal(size=(2, 3, 4, 2))
    out, cache = upsampling.upsample_nearest_forward(x, (2, 3))
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: upsampling.upsample_nearest(t, (2, 3)), (x,), dout)
    stock = tf_gradients(lambda t: tf.repeat(tf.repeat(t, 2, axis=1), 3, axis=2), (x,), dout)
    numeric = [numeric_gradient(lambda: upsampling.upsample_nearest_forward(x, (2, 3))[0], x,
                                dout)]
    return table(["dx"], ours, numeric, stock, [upsampling.upsample_nearest_backward(dout, cache)],
                 out, dout, (x,))


def check_embedding(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of the lookup's (densified) dW: 2 x 5 ids, repeated and negative, into 6 rows."""
    weights, ids = rng.normal(size=(6, 3)), np.array([[0, 2, 2, -1, 5], [1, 1, 0, 3, -6]])
    dout = rng.normal(size=(2, 5, 3))
    ours = tf_gradients(lambda t: embedding_lookup.embedding(t, ids), (weights,), dout)
    stock = tf_gradients(lambda t: keras.ops.take(t, ids, axis=0), (weights,), dout)
    out, cache = embedding_lookup.embedding_forward(weights, ids)
    numeric = [numeric_gradient(lambda: embedding_lookup.embedding_forward(weights, ids)[0],
                                weights, dout)]
    return table(["dW"], ours, numeric, stock, [embedding_lookup.embedding_backward(dout, cache)],
                 out, dout, (weights,))
