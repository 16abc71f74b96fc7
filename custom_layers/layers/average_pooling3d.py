"""``AveragePooling3D``: drop-in for ``keras.layers.AveragePooling3D``, hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.layers.base import cast_real_inputs, in_channels_last
from custom_layers.ops.volumetric_pooling import avg_pool3d


@keras.saving.register_keras_serializable(package="custom_layers")
class AveragePooling3D(keras.layers.AveragePooling3D):
    """Average pooling over (depth, height, width) boxes whose gradient shares each
    window's dy among the cells inside the input (``custom_layers.ops.avg_pool3d``: the
    hand-written 2-D op on each depth plane, then the depth's taps reduced).

    A subclass of the stock layer: arguments (``pool_size``, ``strides``,
    ``padding``, ``data_format``), their checks and config are Keras's own.
    Integer inputs are cast to the compute dtype. Runs in float64 too, which
    stock's CPU kernel refuses.

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first; D, H, W known.

    Example:

    >>> AveragePooling3D(2)(tf.zeros([1, 4, 6, 6, 3])).shape
    TensorShape([1, 2, 3, 3, 3])
    """

    def call(self, inputs):
        def ndhwc(x):
            return avg_pool3d(x, self.pool_size, self.strides, self.padding)

        return in_channels_last(self, ndhwc, cast_real_inputs(self, inputs))


AvgPool3D = AveragePooling3D
