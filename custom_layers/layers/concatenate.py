"""``Concatenate``: drop-in for ``keras.layers.Concatenate`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import merging


@keras.saving.register_keras_serializable(package="custom_layers")
class Concatenate(keras.layers.Concatenate):
    """Keras's ``Concatenate`` whose gradient is hand-written: dy is sliced back into each input's part.

    A subclass of the stock layer: its call (input checks, rank matching,
    masks) is Keras's own, and only the arithmetic runs as ops of
    ``custom_layers.ops.merging``, pair by pair in Keras's order, so values
    and gradients (ties included) are stock's.
    """

    def _merge_function(self, inputs):
        return merging.concatenate(inputs, axis=self.axis)
