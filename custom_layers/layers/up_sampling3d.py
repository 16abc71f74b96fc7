"""``UpSampling3D``: drop-in for ``keras.layers.UpSampling3D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.layers.base import in_channels_last
from custom_layers.ops import upsampling


@keras.saving.register_keras_serializable(package="custom_layers")
class UpSampling3D(keras.layers.UpSampling3D):
    """Keras's 3-D upsampling (nearest: each voxel repeated f_d × f_h × f_w
    times) whose gradient is hand-written: each input receives the sum of its
    copies' dy (``custom_layers.ops.upsample_nearest``). Arguments and config
    are Keras's own.

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first; D, H, W known.

    Example:

    >>> UpSampling3D(2)(tf.ones([1, 1, 2, 3, 1])).shape
    TensorShape([1, 2, 4, 6, 1])
    """

    def call(self, inputs):
        return in_channels_last(self, lambda x: upsampling.upsample_nearest(x, self.size),
                                inputs)
