"""``GlobalMaxPooling3D``: drop-in for ``keras.layers.GlobalMaxPooling3D``, hand-written backward."""

from __future__ import annotations

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class GlobalMaxPooling3D(keras.layers.GlobalMaxPooling3D):
    """Maximum over depth, height and width whose gradient goes to the maximum of
    each channel, split evenly among tied maxima (as stock's gradient of
    ``reduce_max``) (``custom_layers.ops.global_max_pool``).

    A subclass of the stock layer: arguments (``data_format``, ``keepdims``)
    and config are Keras's own. Integer inputs are cast to the compute dtype.

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first.

    Output shape:
        (N, C), or with ``keepdims`` (N, 1, 1, 1, C) / (N, C, 1, 1, 1).

    Example:

    >>> GlobalMaxPooling3D()(tf.zeros([2, 4, 8, 8, 3])).shape
    TensorShape([2, 3])
    """

    def call(self, inputs):
        axes = (2, 3, 4) if self.data_format == "channels_first" else (1, 2, 3)
        y = ops.global_max_pool(cast_real_inputs(self, inputs), axes)
        return y if self.keepdims else tf.squeeze(y, axes)
