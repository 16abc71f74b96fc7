"""``EinsumDense``: drop-in for ``keras.layers.EinsumDense`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers.layers.base import NoLoraOrQuantization, activate_after_op, cast_real_inputs
from custom_layers.ops import contraction


@keras.saving.register_keras_serializable(package="custom_layers")
class EinsumDense(NoLoraOrQuantization, keras.layers.EinsumDense):
    """Keras's einsum layer whose gradients are ``custom_layers.ops.einsum_dense``'s:
    dx and dW are einsums of dy with the other operand, db is dy summed over
    the axes the bias broadcasts on.

    A subclass of the stock layer: equation, output shape, bias axes,
    weights and config are Keras's own. The kernel is read in its own dtype
    (no autocast), so under mixed precision dW and db accumulate in float32.
    Keras's activations are hand-written ops; LoRA and quantization raise a
    ValueError.

    Example:

    >>> EinsumDense("ab,bc->ac", output_shape=4)(tf.zeros([2, 3])).shape
    TensorShape([2, 4])
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._autocast = False

    def call(self, inputs, training=None):
        bias = tf.convert_to_tensor(self.bias) if self.bias is not None else None
        y = contraction.einsum_dense(self.equation, cast_real_inputs(self, inputs),
                                tf.convert_to_tensor(self.kernel), bias)
        return activate_after_op(self, y, fused=False)
