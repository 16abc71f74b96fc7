"""``GlobalMaxPooling2D``: drop-in for its Keras namesake with a hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class GlobalMaxPooling2D(keras.layers.GlobalMaxPooling2D):
    """Maximum over height and width whose gradient is ``custom_layers.ops.global_max_pool``'s.

    A subclass of the stock layer: arguments, their checks and ``get_config``
    are Keras's own; ``call`` hands the maths to the op, whose gradient goes
    to the maximum of each channel, split evenly among tied maxima (as stock
    Keras's gradient of ``reduce_max``). Integer inputs are cast to the
    compute dtype.

    Args:
        data_format, keepdims: as in Keras.

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first.

    Output shape:
        (N, C), or with ``keepdims`` (N, 1, 1, C) / (N, C, 1, 1).

    Example:

    >>> GlobalMaxPooling2D(keepdims=True)(tf.zeros([2, 8, 8, 3])).shape
    TensorShape([2, 1, 1, 3])
    """

    def call(self, inputs):
        axes = (2, 3) if self.data_format == "channels_first" else (1, 2)
        y = ops.global_max_pool(cast_real_inputs(self, inputs), axes)
        return y if self.keepdims else tf.squeeze(y, axes)
