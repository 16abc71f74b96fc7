"""Affine (dense) layer: the NumPy reference (loops and vectorised) and the TF ops.

    forward   y = x · w + b          on the last axis of x (..., D)
    backward  dx = dy · wᵀ,  dw = xᵀ · dy,  db = Σ dy   (x, dy as rows (·, D), (·, M))

``sparse_dense`` takes a 2-D ``tf.SparseTensor`` x, as stock Keras does, and
returns dw as ``tf.IndexedSlices`` over the rows x touches.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from custom_layers.ops.activations import activate, activate_numpy, relu_mask
from custom_layers.ops.custom_op import (
    accumulation_dtype,
    hand_written_op,
    normalize_activation,
    normalize_impl,
    numpy_op,
)

# ----------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------


def _check_affine(x, w):
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            "affine expects x of shape (..., D) and w of shape (D, M). "
            f"Received: x.shape={x.shape}, w.shape={w.shape}"
        )


def affine_forward_naive(x, w, b):
    """Affine layer on the last axis, plain loops over rows and outputs.

    Args:
        x: (..., D). w: (D, M). b: (M,) or None.

    Returns:
        out: (..., M) = x · w + b. cache: (x, w, b).
    """
    _check_affine(x, w)
    rows = x.reshape(-1, w.shape[0])
    out = np.zeros((rows.shape[0], w.shape[1]), dtype=np.result_type(x, w))
    for n in range(rows.shape[0]):
        for m in range(w.shape[1]):
            out[n, m] = np.sum(rows[n] * w[:, m]) + (0 if b is None else b[m])
    return out.reshape(x.shape[:-1] + (w.shape[1],)), (x, w, b)


def affine_backward_naive(dout, cache):
    """Backward of the affine layer, one row at a time.

    Returns:
        dx (..., D) = dout · wᵀ, dw (D, M) = xᵀ · dout, db (M,) or None.
    """
    x, w, b = cache
    rows = x.reshape(-1, w.shape[0])
    drows = dout.reshape(-1, w.shape[1])
    dx = np.zeros(rows.shape, dtype=np.result_type(dout, w))
    dw = np.zeros(w.shape, dtype=np.result_type(dout, x))
    for n in range(rows.shape[0]):
        dx[n] = w @ drows[n]
        dw += np.outer(rows[n], drows[n])
    db = None if b is None else drows.sum(axis=0)
    return dx.reshape(x.shape), dw, db


def affine_forward(x, w, b):
    """Vectorised affine layer; same contract as ``affine_forward_naive``."""
    _check_affine(x, w)
    out = x @ w
    if b is not None:
        out = out + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Vectorised backward: dx = dout · wᵀ, dw = xᵀ · dout, db = Σ dout."""
    x, w, b = cache
    rows = x.reshape(-1, w.shape[0])
    drows = dout.reshape(-1, w.shape[1])
    dx = (drows @ w.T).reshape(x.shape)
    dw = rows.T @ drows
    db = None if b is None else drows.sum(axis=0)
    return dx, dw, db


# ----------------------------------------------------------------------------
# TensorFlow ops
# ----------------------------------------------------------------------------


# Plain TF ops, not an XLA call: a dense layer's dy is small (batch x units),
# and in a training step the XLA launch cost more than the pass it saves
# (measured ~1.5% of the reference model's step). db is a (1 x rows) ones
# vector times dy: TensorFlow's column-sum kernel shares the thread pool with
# the big dw/dx matmuls running at the same time and was seen waiting ~2 ms
# for them, while a matmul this small finishes at once (~2% of the step).
def _output_grads(y, dy, relu: bool, acc_name: str):
    """dy (rows, M) masked by the ReLU, and Σ dy in the accumulation dtype."""
    if relu:
        dy = relu_mask(y, dy)
    dy_acc = tf.cast(dy, acc_name)
    ones = tf.ones([1, tf.shape(dy_acc)[0]], dy_acc.dtype)
    return dy, tf.matmul(ones, dy_acc)[0]


def _dense_tf(x, kernel, bias, activation):
    acc = accumulation_dtype(x.dtype)
    d, m = kernel.shape

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        rows = tf.reshape(x, [-1, d])
        y = tf.matmul(rows, k)
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        y = activate(y, activation)
        return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [m]], 0)), (x, k, kernel, bias, rows, y)

    def backward(dy, saved):
        x, k, kernel, bias, rows, y = saved
        dy_rows, db = _output_grads(y, tf.reshape(dy, [-1, m]), activation == "relu", acc.name)
        dx = tf.reshape(tf.matmul(dy_rows, k, transpose_b=True), tf.shape(x))
        with tf.control_dependencies([dy]):  # the cast copies x: not right after the forward
            rows_acc = tf.cast(rows, acc)
        dw = tf.matmul(rows_acc, tf.cast(dy_rows, acc), transpose_a=True)
        db = None if bias is None else tf.cast(db, bias.dtype)
        return dx, tf.cast(dw, kernel.dtype), db

    y = hand_written_op(forward, backward, x, kernel, bias)
    y.set_shape(x.shape[:-1].concatenate([m]))
    return y


def _dense_numpy(x, kernel, bias):
    out_shape = x.shape[:-1].concatenate([kernel.shape[1]])

    def forward(xa, wa, *ba):
        return affine_forward(xa, wa, ba[0] if ba else None)[0]

    def backward(dy, xa, wa, *ba):
        return affine_backward(dy, (xa, wa, ba[0] if ba else None))

    return numpy_op("dense_numpy", forward, backward, out_shape,
                    [x, kernel, bias])


def dense(
    x: tf.Tensor,
    kernel: tf.Tensor,
    bias: Optional[tf.Tensor] = None,
    activation: Optional[str] = None,
    impl: str = "tf",
) -> tf.Tensor:
    """Affine layer on the last axis with a hand-written gradient.

    Args:
        x: (..., D), any rank ≥ 2.
        kernel: (D, M). bias: (M,) or None.
        activation: None or "relu", fused into the op.
        impl: "tf" or "numpy" (see ``conv.conv2d``).

    Returns:
        (..., M) = x · kernel + bias.
    """
    activation = normalize_activation(activation)
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    if kernel.shape.rank != 2 or x.shape.rank is None or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            "dense expects x of shape (..., D) and a kernel of shape (D, M). "
            f"Received x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    if bias is not None:
        bias = tf.convert_to_tensor(bias)
    if impl == "numpy":
        return activate_numpy(_dense_numpy(x, kernel, bias), activation)
    return _dense_tf(x, kernel, bias, activation)


def sparse_dense(x: tf.SparseTensor, kernel: tf.Tensor, bias: Optional[tf.Tensor] = None,
                 activation: Optional[str] = None) -> tf.Tensor:
    """``dense`` for a 2-D sparse x (N, D), as stock Keras takes it.

    Backward: dW = xᵀ·dy touches only the kernel rows of x's non-empty columns,
    so it comes back as ``tf.IndexedSlices`` over those rows (as stock's does);
    db = Σ dy. x is data here: no gradient flows to it.
    """
    activation = normalize_activation(activation)
    kernel = tf.convert_to_tensor(kernel)
    if (x.shape.rank != 2 or kernel.shape.rank != 2
            or x.shape[-1] not in (None, kernel.shape[0])):
        raise ValueError("sparse_dense expects x of shape (N, D) and a kernel of shape (D, M). "
                         f"Received x.shape={x.shape}, kernel.shape={kernel.shape}")
    acc = accumulation_dtype(x.dtype)
    bias = None if bias is None else tf.convert_to_tensor(bias)

    def forward(kernel, bias):
        y = tf.sparse.sparse_dense_matmul(x, tf.cast(kernel, x.dtype))
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        y = activate(y, activation)
        return y, (kernel, bias, y)

    def backward(dy, saved):
        kernel, bias, y = saved
        dy, db = _output_grads(y, dy, activation == "relu", acc.name)
        columns, slot = tf.unique(x.indices[:, 1])
        # Each stored x[r, c] adds x[r, c]·dy[r] to row c of dW.
        contributions = (tf.cast(x.values, acc)[:, None]
                         * tf.gather(tf.cast(dy, acc), x.indices[:, 0]))
        rows = tf.math.unsorted_segment_sum(contributions, slot, tf.size(columns))
        dw = tf.IndexedSlices(tf.cast(rows, kernel.dtype), columns,
                              tf.shape(kernel, out_type=columns.dtype))
        return dw, None if bias is None else tf.cast(db, bias.dtype)

    return hand_written_op(forward, backward, kernel, bias)
