"""``ELU``: drop-in for ``keras.layers.ELU`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class ELU(keras.layers.ELU):
    """Keras's exponential linear unit whose gradient is the ``elu`` rule of
    ``custom_layers.ops.pointwise``: dy for x > 0, α eˣ dy below.

    A subclass of the stock layer (same argument and config); values are
    stock's bit for bit. Integer inputs are cast to the compute dtype.

    Args:
        alpha: the scale of the negative part (default 1.0).

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> ELU()(tf.constant([[0.0, 2.0]])).numpy()
    array([[0., 2.]], dtype=float32)
    """

    def call(self, inputs):
        return ops.activation("elu", cast_real_inputs(self, inputs), alpha=self.alpha)
