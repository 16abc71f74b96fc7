"""``LeakyReLU``: drop-in for ``keras.layers.LeakyReLU`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class LeakyReLU(keras.layers.LeakyReLU):
    """Keras's leaky rectifier whose gradient is ``custom_layers.ops.relu_general``'s:
    dy for x > 0, ``negative_slope`` · dy below.

    A subclass of the stock layer (same argument, its checks and config);
    values are stock's bit for bit. Integer inputs are cast to the compute dtype.

    Args:
        negative_slope: the slope below 0 (Keras's default 0.3).

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> LeakyReLU(0.5)(tf.constant([[-2.0, 3.0]])).numpy()
    array([[-1.,  3.]], dtype=float32)
    """

    def call(self, inputs):
        return ops.relu_general(cast_real_inputs(self, inputs), self.negative_slope)
