"""``UpSampling2D``: drop-in for ``keras.layers.UpSampling2D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.layers.base import in_channels_last
from custom_layers.ops import upsampling

_METHODS = ("nearest", *upsampling.INTERPOLATIONS)


@keras.saving.register_keras_serializable(package="custom_layers")
class UpSampling2D(keras.layers.UpSampling2D):
    """Keras's 2-D upsampling whose gradient is hand-written: for "nearest" each
    input receives the sum of its f_h × f_w copies' dy, for "bilinear",
    "bicubic", "lanczos3" and "lanczos5" the transposed interpolation
    (``custom_layers.ops.upsampling``). Arguments and config are Keras's own;
    any other interpolation raises a ValueError.

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first; H and W known.

    Example:

    >>> UpSampling2D(2)(tf.ones([1, 2, 3, 1])).shape
    TensorShape([1, 4, 6, 1])
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.interpolation not in _METHODS:
            raise ValueError(f"custom_layers.UpSampling2D has hand-written backwards for "
                             f"{_METHODS} interpolation. Received: "
                             f"interpolation={self.interpolation!r}")

    def call(self, inputs):
        if self.interpolation == "nearest":
            return in_channels_last(self, lambda x: upsampling.upsample_nearest(x, self.size),
                                    inputs)
        return in_channels_last(self, lambda x: upsampling.upsample_interpolated(
            x, self.size, self.interpolation), inputs)
