"""The convolution's backward: one plan per layer, fixed at trace time from static shapes.

``plan_backward`` picks how dx (``convolution_input_grad``) and dw and db
(``convolution_kernel_grad``) are computed from the layer's static shapes
and dtype, by the rules written down there and measured in
docs/performance.md; ``conv2d_gradients`` runs the plan. Every form is
forward convolutions, matrix products, slicing, reshapes and elementwise
ops, most of the elementwise and layout work fused by small XLA functions.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from custom_layers.ops.convolution_input_grad import (
    InputGradPlan,
    input_grad,
    plan_input_grad,
)
from custom_layers.ops.convolution_kernel_grad import (
    KernelGradPlan,
    kernel_grad,
    plan_kernel_grad,
)
from custom_layers.ops.shapes import Pads


class BackwardPlan(NamedTuple):
    """dx's and dw's plans for one convolution."""

    input_grad: InputGradPlan
    kernel_grad: KernelGradPlan


def plan_backward(x_shape: Sequence[Optional[int]], kernel_shape: Sequence[int],
                  strides: Tuple[int, int], pads: Pads, dtype: tf.DType,
                  dilation: Tuple[int, int] = (1, 1)) -> BackwardPlan:
    """The plan of the convolution of x (N, H, W, C) in ``dtype`` with a kernel
    (KH, KW, C, F) and the forward's pads."""
    return BackwardPlan(
        plan_input_grad(tuple(x_shape[1:3]), kernel_shape, strides, pads, dilation),
        plan_kernel_grad(x_shape, kernel_shape, strides, pads, dtype, dilation),
    )


def conv2d_gradients(x: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, k: tf.Tensor, relu: bool,
                    kernel_dtype: str, plan: BackwardPlan):
    """dx (N, H, W, C), dw (KH, KW, C, F) in ``kernel_dtype`` and db (F,) in float32.

    x, y: the forward's input and output; dy: (N, HO, WO, F); k: the kernel
    in x's dtype; relu: whether the forward applied a fused ReLU (y gives its mask).
    When nothing uses dx (the first layer) TensorFlow prunes its computation.
    """
    dx = input_grad(y, dy, k, relu, plan.input_grad)
    dw, db = kernel_grad(x, y, dy, relu, kernel_dtype, plan.kernel_grad)
    return dx, dw, db
