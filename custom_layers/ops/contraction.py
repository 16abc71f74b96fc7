"""Two-operand einsum with a hand-written gradient: NumPy reference and TF op.

For y = einsum("A,B->Y", a, b) each operand's gradient is itself an einsum of
dy with the other operand, summing what the forward kept:

    da = einsum("Y,B->A", dy, b),   db = einsum("Y,A->B", dy, a)

An index of A found in neither Y nor B was summed away by the forward; the
gradient is the same along it, so da is computed without it and broadcast
back. ``einsum_dense`` adds a bias (Keras's EinsumDense), whose gradient is
dy summed over the axes it is broadcast on. Ellipses ("...") are spelled out
into letters from the operands' ranks.
"""

from __future__ import annotations

import string
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import accumulation_dtype, hand_written_op
from custom_layers.ops.merging import unbroadcast


def parse(equation: str, rank_a: int, rank_b: int) -> Tuple[str, str, str]:
    """("A", "B", "Y") of a two-operand equation, ellipses spelled out.

    Raises:
        ValueError: for anything but two inputs and an explicit output.
    """
    equation = equation.replace(" ", "")
    if equation.count(",") != 1 or "->" not in equation:
        raise ValueError(f"einsum takes 'A,B->Y' with two operands. Received: {equation!r}")
    inputs, out = equation.split("->")
    a, b = inputs.split(",")
    spare = [c for c in string.ascii_letters if c not in equation]
    # Ellipsis axes align from the right, as in NumPy: one letter per axis.
    a_extra = rank_a - len(a.replace("...", "")) if "..." in a else 0
    b_extra = rank_b - len(b.replace("...", "")) if "..." in b else 0
    fill = "".join(spare[:max(a_extra, b_extra, 0)])
    a = a.replace("...", fill[len(fill) - a_extra:])
    b = b.replace("...", fill[len(fill) - b_extra:])
    out = out.replace("...", fill)
    if len(a) != rank_a or len(b) != rank_b:
        raise ValueError(f"einsum equation {equation!r} does not fit operands of rank "
                         f"{rank_a} and {rank_b}")
    return a, b, out


def _operand_grad(einsum, broadcast_to, dy, other, spec: str, other_spec: str, out: str, shape):
    kept = "".join(c for c in spec if c in out or c in other_spec)
    g = einsum(f"{out},{other_spec}->{kept}", dy, other)
    if kept == spec:
        return g
    # Indices the forward summed away: the gradient is the same all along them.
    expanded = tuple(slice(None) if c in kept else None for c in spec)
    return broadcast_to(g[expanded], shape)


def einsum_forward(equation: str, a: np.ndarray, b: np.ndarray):
    """einsum of two operands. Returns out and the cache."""
    return np.einsum(equation, a, b), (equation, a, b)


def einsum_backward(dout: np.ndarray, cache):
    """Returns (da, db)."""
    equation, a, b = cache
    sa, sb, so = parse(equation, a.ndim, b.ndim)
    return (_operand_grad(np.einsum, np.broadcast_to, dout, b, sa, sb, so, a.shape),
            _operand_grad(np.einsum, np.broadcast_to, dout, a, sb, sa, so, b.shape))


def einsum_dense(equation: str, x: tf.Tensor, kernel: tf.Tensor,
                 bias: Optional[tf.Tensor] = None) -> tf.Tensor:
    """``einsum(equation, x, kernel) + bias`` with hand-written gradients.

    Args:
        equation: two operands and an explicit output, e.g. "abc,cde->abde".
        x: the input, any floating dtype.
        kernel, bias: weights; cast to x's dtype in the forward, their
            gradients summed in float32 for float16/bfloat16 inputs and
            returned in their own dtype. bias broadcasts against the output.
    """
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    sx, sk, so = parse(equation, x.shape.rank, kernel.shape.rank)
    spelled = f"{sx},{sk}->{so}"

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        y = tf.einsum(spelled, x, k)
        if bias is not None:
            y = y + tf.cast(bias, x.dtype)
        return y, (x, k)

    def backward(dy, saved):
        x, k = saved
        dx = _operand_grad(tf.einsum, tf.broadcast_to, dy, k, sx, sk, so, tf.shape(x))
        acc = accumulation_dtype(dy.dtype)
        dy_acc = tf.cast(dy, acc)
        dk = _operand_grad(tf.einsum, tf.broadcast_to, dy_acc, tf.cast(x, acc), sk, sx, so,
                           tf.shape(kernel))
        db = None if bias is None else tf.cast(unbroadcast(dy_acc, bias), bias.dtype)
        return dx, tf.cast(dk, kernel.dtype), db

    return hand_written_op(forward, backward, x, kernel,
                           None if bias is None else tf.convert_to_tensor(bias))


def einsum(equation: str, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``tf.einsum(equation, a, b)`` (one dtype) with the hand-written gradients above."""
    a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
    sa, sb, so = parse(equation, a.shape.rank, b.shape.rank)
    spelled = f"{sa},{sb}->{so}"

    def forward(a, b):
        return tf.einsum(spelled, a, b), (a, b)

    def backward(dy, saved):
        a, b = saved
        return (_operand_grad(tf.einsum, tf.broadcast_to, dy, b, sa, sb, so, tf.shape(a)),
                _operand_grad(tf.einsum, tf.broadcast_to, dy, a, sb, sa, so, tf.shape(b)))

    return hand_written_op(forward, backward, a, b)
