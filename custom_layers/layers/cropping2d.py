"""``Cropping2D``: drop-in for ``keras.layers.Cropping2D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import padding


@keras.saving.register_keras_serializable(package="custom_layers")
class Cropping2D(keras.layers.Cropping2D):
    """Keras's 2-D cropping whose gradient is ``custom_layers.ops.crop``'s: dy
    padded back with zeros. Arguments, checks (a cropping must leave part of
    the axis) and config are Keras's own.

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first.
    """

    def call(self, inputs):
        spatial = tuple(tuple(c) for c in self.cropping)
        crops = ((0, 0), (0, 0), *spatial) if self.data_format == "channels_first" \
            else ((0, 0), *spatial, (0, 0))
        return padding.crop(inputs, crops)
