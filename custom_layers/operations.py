"""Twins of the bare operations a functional graph holds (``x + 3.0``, ``x * y``):
Keras records them as ``keras.src.ops`` operations, not layers, and
``swap_layers`` replaces them too (MobileNetV3's hard sigmoid is ``relu6(x + 3) / 6``
written as ops)."""

from __future__ import annotations

from typing import Callable, Dict

import tensorflow as tf
from keras.src.ops import numpy as keras_numpy

from custom_layers.ops import merging


def _tensors(x1, x2):
    """Both operands as tensors; a Python number takes the other operand's dtype (as Keras)."""
    if not tf.is_tensor(x1) and tf.is_tensor(x2):
        return tf.convert_to_tensor(x1, tf.convert_to_tensor(x2).dtype), tf.convert_to_tensor(x2)
    x1 = tf.convert_to_tensor(x1)
    return x1, tf.convert_to_tensor(x2, x1.dtype if not tf.is_tensor(x2) else None)


def _binary(stock: type, op: Callable) -> type:
    def call(self, x1, x2):
        a, b = _tensors(x1, x2)
        if a.dtype != b.dtype or not a.dtype.is_floating:
            return stock.call(self, x1, x2)  # Keras's dtype promotion; no gradient to write
        return op(a, b)

    return type(stock.__name__, (stock,), {
        "call": call,
        "__doc__": f"``keras.ops.{op.__name__}`` as a graph operation, with the hand-written "
                   f"gradient of ``custom_layers.ops.merging.{op.__name__}``.",
        "__module__": __name__,
    })


Add = _binary(keras_numpy.Add, merging.add)
Subtract = _binary(keras_numpy.Subtract, merging.subtract)
Multiply = _binary(keras_numpy.Multiply, merging.multiply)

OPERATION_TWINS: Dict[type, type] = {
    keras_numpy.Add: Add, keras_numpy.Subtract: Subtract, keras_numpy.Multiply: Multiply,
}
