"""``Subtract``: drop-in for ``keras.layers.Subtract`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import merging


@keras.saving.register_keras_serializable(package="custom_layers")
class Subtract(keras.layers.Subtract):
    """Keras's ``Subtract`` whose gradient is hand-written: da = dy, db = −dy.

    A subclass of the stock layer: its call (input checks, rank matching,
    masks) is Keras's own, and only the arithmetic runs as ops of
    ``custom_layers.ops.merging``, pair by pair in Keras's order, so values
    and gradients (ties included) are stock's.
    """

    def _merge_function(self, inputs):
        if len(inputs) != 2:
            raise ValueError("A `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received: inputs={inputs}")
        return merging.subtract(inputs[0], inputs[1])
