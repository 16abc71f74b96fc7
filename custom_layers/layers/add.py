"""``Add``: drop-in for ``keras.layers.Add`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.layers.base_merge import chain
from custom_layers.ops import merging


@keras.saving.register_keras_serializable(package="custom_layers")
class Add(keras.layers.Add):
    """Keras's ``Add`` whose gradient is hand-written: each input receives dy (summed over the axes it was broadcast on).

    A subclass of the stock layer: its call (input checks, rank matching,
    masks) is Keras's own, and only the arithmetic runs as ops of
    ``custom_layers.ops.merging``, pair by pair in Keras's order, so values
    and gradients (ties included) are stock's.
    """

    def _merge_function(self, inputs):
        return chain(merging.add, inputs)
