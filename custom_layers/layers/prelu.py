"""``PReLU``: drop-in for ``keras.layers.PReLU`` with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class PReLU(keras.layers.PReLU):
    """Keras's parametric ReLU whose gradients are ``custom_layers.ops.prelu``'s:
    dx = dy on x > 0 and α dy below, dα = Σ dy · min(x, 0) over the batch and
    the shared axes.

    A subclass of the stock layer: arguments, the ``alpha`` weight (its
    initializer, regularizer, constraint and ``shared_axes``), input spec and
    config are Keras's own. Under mixed precision α stays float32 and its
    gradient is summed in float32.

    Args:
        alpha_initializer, alpha_regularizer, alpha_constraint, shared_axes:
            as in Keras.

    Input shape:
        (N, ...), with the non-shared axes known. Output shape: the input's.

    Example:

    >>> PReLU(alpha_initializer=keras.initializers.Constant(0.25))(
    ...     tf.constant([[-4.0, 4.0]])).numpy()
    array([[-1.,  4.]], dtype=float32)
    """

    def call(self, inputs):
        return ops.prelu(cast_real_inputs(self, inputs), tf.convert_to_tensor(self.alpha))
