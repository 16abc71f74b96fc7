"""``AveragePooling1D``: drop-in for ``keras.layers.AveragePooling1D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.max_pooling1d import pool_1d


@keras.saving.register_keras_serializable(package="custom_layers")
class AveragePooling1D(keras.layers.AveragePooling1D):
    """1-D average pooling whose gradient is ``custom_layers.ops.avg_pool2d``'s on
    a height-1 image (dy / count back over each window). Arguments and config
    are Keras's own.

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first.
    """

    def call(self, inputs):
        return pool_1d(self, ops.avg_pool2d, inputs)
