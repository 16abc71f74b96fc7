"""Gradient checks of the 3-D ops built on the depth's taps: the unfolding, the
3-D convolution and 3-D pooling."""

from __future__ import annotations

import itertools
from typing import Dict

import numpy as np
import tensorflow as tf

from custom_layers.gradcheck.measure import numeric_gradient, tf_gradients
from custom_layers.gradcheck.pointwise_checks import table
from custom_layers.ops import unfolding, volumetric_convolution, volumetric_pooling


def check_unfold(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of unfold's dx: 3 taps, stride 2, dilation 2, uneven padding."""
    x = rng.normal(size=(2, 9, 3, 2))
    args = (1, 3, 2, 2, (1, 2))
    out, cache = unfolding.unfold_forward(x, *args)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: unfolding.unfold(t, *args), (x,), dout)

    def by_slices(t):  # TensorFlow's autodiff of the plain definition
        t = tf.pad(t, [[0, 0], [1, 2], [0, 0], [0, 0]])
        return tf.stack([t[:, 2 * k:2 * k + 2 * (out.shape[1] - 1) + 1:2] for k in range(3)], -2)

    stock = tf_gradients(by_slices, (x,), dout)
    numeric = [numeric_gradient(lambda: unfolding.unfold_forward(x, *args)[0], x, dout)]
    return table(["dx"], ours, numeric, stock, [unfolding.unfold_backward(dout, cache)], out,
                 dout, (x,))


def check_conv3d(rng: np.random.Generator) -> Dict[str, Dict[str, float]]:
    """Errors of conv3d's dx/dw/db, strides (2, 1, 2), SAME."""
    x, w, b = rng.normal(size=(2, 5, 4, 5, 2)), rng.normal(size=(3, 2, 3, 2, 3)), \
        rng.normal(size=(3,))
    strides, padding = (2, 1, 2), "same"
    out, cache = volumetric_convolution.conv3d_forward(x, w, b, strides, padding)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda *t: volumetric_convolution.conv3d(*t, strides, padding),
                        (x, w, b), dout)
    stock = tf_gradients(lambda xx, ww, bb: tf.nn.conv3d(xx, ww, [1, *strides, 1], "SAME") + bb,
                         (x, w, b), dout)
    numeric = [numeric_gradient(
        lambda: volumetric_convolution.conv3d_forward(x, w, b, strides, padding)[0], v, dout)
        for v in (x, w, b)]
    return table(["dx", "dw", "db"], ours, numeric, stock,
                 volumetric_convolution.conv3d_backward(dout, cache), out, dout, (x, w, b))


def _pool3d_by_slices(t: tf.Tensor, kind: str, pool_size, strides, pads) -> tf.Tensor:
    """3-D pooling as a max or mean over the window's shifted slices, for TensorFlow to
    differentiate (its 3-D pooling kernels take no float64)."""
    fill = float("-inf") if kind == "max" else 0.0
    widths = [[0, 0], *([p.before, p.after] for p in pads), [0, 0]]
    outs = [p.out for p in pads]

    def shifted(v):
        return [v[:, a:a + (outs[0] - 1) * strides[0] + 1:strides[0],
                  b:b + (outs[1] - 1) * strides[1] + 1:strides[1],
                  c:c + (outs[2] - 1) * strides[2] + 1:strides[2]]
                for a, b, c in itertools.product(*(range(k) for k in pool_size))]

    cells = shifted(tf.pad(t, widths, constant_values=fill))
    if kind == "max":
        return tf.reduce_max(tf.stack(cells), axis=0)
    inside = tf.pad(tf.ones([1, *t.shape[1:4], 1], t.dtype), widths)
    return tf.add_n(cells) / tf.add_n(shifted(inside))  # over the cells inside the input


def check_pool3d(rng: np.random.Generator, kind: str) -> Dict[str, Dict[str, float]]:
    """Errors of 3-D max / average pooling's dx: (3, 2, 3) windows, strides (2, 1, 2),
    SAME (distinct values: one maximum per window)."""
    x = rng.permutation(2 * 5 * 4 * 5 * 2).reshape(2, 5, 4, 5, 2) / 9.0
    pool_size, strides, padding = (3, 2, 3), (2, 1, 2), "same"
    op = volumetric_pooling.max_pool3d if kind == "max" else volumetric_pooling.avg_pool3d
    out, cache = volumetric_pooling.pool3d_forward_naive(x, kind, pool_size, strides, padding)
    dout = rng.normal(size=out.shape)
    ours = tf_gradients(lambda t: op(t, pool_size, strides, padding), (x,), dout)
    _, _, pads = volumetric_pooling.pool3d_geometry(x.shape, pool_size, strides, padding, kind)
    stock = tf_gradients(lambda t: _pool3d_by_slices(t, kind, pool_size, strides, pads), (x,),
                         dout)
    numeric = [numeric_gradient(lambda: volumetric_pooling.pool3d_forward_naive(
        x, kind, pool_size, strides, padding)[0], x, dout)]
    return table(["dx"], ours, numeric, stock,
                 [volumetric_pooling.pool3d_backward_naive(dout, cache)], out, dout, (x,))
