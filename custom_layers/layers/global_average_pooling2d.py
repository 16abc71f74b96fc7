"""``GlobalAveragePooling2D``: drop-in for its Keras namesake with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class GlobalAveragePooling2D(keras.layers.GlobalAveragePooling2D):
    """Mean over height and width whose gradient is ``custom_layers.ops.global_avg_pool``'s.

    A subclass of the stock layer: arguments, their checks and ``get_config``
    are Keras's own; ``call`` hands the maths to the op (dx = dy / (H·W) at
    every cell). Integer inputs are cast to the compute dtype, so the mean of
    [1, 2, 2, 2] is 1.75, as stock gives.

    Args:
        data_format, keepdims: as in Keras.

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first.

    Output shape:
        (N, C), or with ``keepdims`` (N, 1, 1, C) / (N, C, 1, 1).

    Example:

    >>> GlobalAveragePooling2D()(tf.zeros([2, 8, 8, 3])).shape
    TensorShape([2, 3])
    """

    def call(self, inputs):
        axes = (2, 3) if self.data_format == "channels_first" else (1, 2)
        y = ops.global_avg_pool(cast_real_inputs(self, inputs), axes)
        return y if self.keepdims else tf.squeeze(y, axes)
