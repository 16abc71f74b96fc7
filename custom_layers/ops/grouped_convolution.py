"""Grouped 2-D convolution as the hand-written ops: one depthwise op when every
input channel is its own group, else one ``conv2d`` per group, concatenated.

Shapes: x (N, H, W, C), kernel (KH, KW, C / G, F) (Keras's grouped layout, the
filters of group g being ``F / G · g`` onwards), bias (F,), y (N, HO, WO, F).
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from custom_layers.ops.activations import relu as relu_op
from custom_layers.ops.convolution import conv2d
from custom_layers.ops.custom_op import IntOrPair
from custom_layers.ops.depthwise_convolution import depthwise_conv2d


def grouped_conv2d(x: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor], groups: int,
                   strides: IntOrPair, padding: str, dilation_rate: IntOrPair, relu: bool,
                   impl: str = "tf") -> tf.Tensor:
    """``conv2d`` on NHWC x in ``groups`` groups; ReLU fused when ``relu``.

    With one group per input channel (ConvNeXt's depthwise form) one
    ``depthwise_conv2d``: the kernel (KH, KW, 1, F) is the depthwise one
    (KH, KW, C, F / C), its filters in the same order. Other groupings run one
    op per group, their outputs concatenated (the gradient of a concatenation
    is dy's slices).
    """
    strides, dilation_rate = _pair(strides), _pair(dilation_rate)
    channels = x.shape[-1]
    if (groups > 1 and groups == channels and impl == "tf"
            and not (max(strides) > 1 and max(dilation_rate) > 1)):
        depthwise = tf.reshape(kernel, [*kernel.shape[:2], channels, -1])
        y = depthwise_conv2d(x, depthwise, bias, strides=strides, padding=padding,
                             dilation=dilation_rate)
        return relu_op(y) if relu else y

    def conv(x, k, b):
        return conv2d(x, k, b, strides=strides, padding=padding,
                      activation="relu" if relu else None, impl=impl,
                      dilation_rate=dilation_rate)

    if groups == 1:
        return conv(x, kernel, bias)
    xs = tf.split(x, groups, axis=-1)
    ks = tf.split(kernel, groups, axis=-1)
    bs = tf.split(bias, groups) if bias is not None else [None] * groups
    return tf.concat([conv(*args) for args in zip(xs, ks, bs)], axis=-1)


def _pair(v) -> tuple:
    return (v, v) if isinstance(v, int) else tuple(v)
