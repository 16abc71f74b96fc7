"""``Cropping3D``: drop-in for ``keras.layers.Cropping3D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import padding


@keras.saving.register_keras_serializable(package="custom_layers")
class Cropping3D(keras.layers.Cropping3D):
    """Keras's 3-D cropping whose gradient is ``custom_layers.ops.crop``'s: dy
    padded back with zeros. Arguments, checks (a cropping must leave part of
    each axis) and config are Keras's own.

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first.

    Example:

    >>> Cropping3D(1)(tf.ones([1, 3, 4, 5, 2])).shape
    TensorShape([1, 1, 2, 3, 2])
    """

    def call(self, inputs):
        spatial = tuple(tuple(c) for c in self.cropping)
        crops = ((0, 0), (0, 0), *spatial) if self.data_format == "channels_first" \
            else ((0, 0), *spatial, (0, 0))
        return padding.crop(inputs, crops)
