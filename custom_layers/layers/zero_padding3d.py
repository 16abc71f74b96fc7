"""``ZeroPadding3D``: drop-in for ``keras.layers.ZeroPadding3D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import padding


@keras.saving.register_keras_serializable(package="custom_layers")
class ZeroPadding3D(keras.layers.ZeroPadding3D):
    """Keras's 3-D zero padding whose gradient is ``custom_layers.ops.zero_pad``'s:
    dy cropped back to the input. Arguments, checks and config are Keras's own.

    Input shape:
        (N, D, H, W, C), or (N, C, D, H, W) with channels_first.

    Example:

    >>> ZeroPadding3D(1)(tf.ones([1, 2, 2, 2, 1])).shape
    TensorShape([1, 4, 4, 4, 1])
    """

    def call(self, inputs):
        spatial = tuple(tuple(p) for p in self.padding)
        pads = ((0, 0), (0, 0), *spatial) if self.data_format == "channels_first" \
            else ((0, 0), *spatial, (0, 0))
        return padding.zero_pad(inputs, pads)
