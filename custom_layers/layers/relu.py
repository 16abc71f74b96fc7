"""``ReLU``: drop-in for ``keras.layers.ReLU`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class ReLU(keras.layers.ReLU):
    """Keras's rectifier whose gradient is hand-written: ``custom_layers.ops.relu``'s
    (dy where the output is positive) for the plain one, ``ops.relu_general``'s
    for ``max_value`` (ReLU6), ``negative_slope`` (leaky) and ``threshold``.

    A subclass of the stock layer: arguments, their checks and ``get_config``
    are Keras's own, and the values are stock's bit for bit. Integer inputs
    are cast to the compute dtype.

    Args:
        max_value, negative_slope, threshold: as in Keras.

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> ReLU(max_value=6.0)(tf.constant([[-1.0, 2.0, 7.0]])).numpy()
    array([[0., 2., 6.]], dtype=float32)
    """

    def call(self, inputs):
        return ops.relu_general(cast_real_inputs(self, inputs), self.negative_slope,
                                self.max_value, self.threshold)
