"""``UpSampling1D``: drop-in for ``keras.layers.UpSampling1D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import upsampling


@keras.saving.register_keras_serializable(package="custom_layers")
class UpSampling1D(keras.layers.UpSampling1D):
    """Keras's 1-D upsampling (each step repeated ``size`` times) whose gradient
    is hand-written: each step receives the sum of its copies' dy
    (``custom_layers.ops.upsample_nearest``). Arguments and config are Keras's own.

    Input shape:
        (N, steps, C), steps known.

    Example:

    >>> UpSampling1D(2)(tf.ones([1, 3, 4])).shape
    TensorShape([1, 6, 4])
    """

    def call(self, inputs):
        return upsampling.upsample_nearest(inputs, (self.size,))
