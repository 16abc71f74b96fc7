"""``AveragePooling2D``: drop-in for ``keras.layers.AveragePooling2D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs, in_channels_last


@keras.saving.register_keras_serializable(package="custom_layers")
class AveragePooling2D(keras.layers.AveragePooling2D):
    """Average pooling whose gradient is ``custom_layers.ops.avg_pool2d``'s.

    A subclass of the stock layer: arguments, their checks, ``built``,
    ``compute_output_shape`` and ``get_config`` are Keras's own; ``call``
    hands the maths to the op, which gives each window's dy / count back to
    its cells. SAME padding averages over the cells inside the input, as
    TensorFlow does. Integer inputs are cast to the compute dtype.

    Args:
        pool_size, strides, padding, data_format: as in Keras.

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first; H and W known.

    Output shape:
        (N, HO, WO, C) or (N, C, HO, WO): HO = ceil(H / SH) for "same",
        (H - PH) // SH + 1 for "valid".

    Example:

    >>> AveragePooling2D(2)(tf.zeros([1, 8, 8, 3])).shape
    TensorShape([1, 4, 4, 3])
    """

    def call(self, inputs):
        def nhwc(x):
            return ops.avg_pool2d(x, self.pool_size, self.strides, self.padding)

        return in_channels_last(self, nhwc, cast_real_inputs(self, inputs))


AvgPool2D = AveragePooling2D
