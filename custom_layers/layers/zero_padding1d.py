"""``ZeroPadding1D``: drop-in for ``keras.layers.ZeroPadding1D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import padding


@keras.saving.register_keras_serializable(package="custom_layers")
class ZeroPadding1D(keras.layers.ZeroPadding1D):
    """Keras's 1-D zero padding whose gradient is ``custom_layers.ops.zero_pad``'s:
    dy cropped back to the input. Arguments, checks and config are Keras's own.

    Input shape:
        (N, steps, C), or (N, C, steps) with channels_first.
    """

    def call(self, inputs):
        spatial = (tuple(self.padding),)
        pads = ((0, 0), (0, 0), *spatial) if self.data_format == "channels_first" \
            else ((0, 0), *spatial, (0, 0))
        return padding.zero_pad(inputs, pads)
