"""``MaxPooling2D``: drop-in for ``keras.layers.MaxPooling2D``, hand-written backward."""

from __future__ import annotations

from typing import Any, Dict

import keras

from custom_layers import ops
from custom_layers.base import CustomGradientLayer, resolve_channels_last
from custom_layers.padding import axis_padding, normalize_padding, normalize_tuple


@keras.saving.register_keras_serializable(package="custom_layers")
class MaxPooling2D(CustomGradientLayer):
    """Max pooling whose gradient goes to each window's first maximum.

    Args:
        pool_size: int or (PH, PW).
        strides: int or (SH, SW); None means ``pool_size``. Windows may overlap.
        padding: "valid" or "same"; padded positions never win.
        data_format: None or "channels_last"; channels-first is refused.
        impl: "tf" (default) or "numpy" (CPU only, slow, no XLA, not exportable).

    Input shape:
        (N, H, W, C) with H and W known.

    Output shape:
        (N, HO, WO, C): HO = ceil(H / SH) for "same",
        (H - PH) // SH + 1 for "valid".

    Example:

    >>> MaxPooling2D(2)(tf.zeros([1, 28, 28, 32])).shape
    TensorShape([1, 14, 14, 32])
    """

    def __init__(
        self,
        pool_size=(2, 2),
        strides=None,
        padding: str = "valid",
        data_format=None,
        impl: str = "tf",
        **kwargs,
    ):
        super().__init__(impl=impl, **kwargs)
        self.pool_size = normalize_tuple(pool_size, "pool_size")
        self.strides = (
            self.pool_size if strides is None else normalize_tuple(strides, "strides")
        )
        self.padding = normalize_padding(padding)
        self.data_format = resolve_channels_last(data_format, type(self).__name__)
        self.input_spec = keras.InputSpec(ndim=4)

    def call(self, inputs):
        return ops.max_pool2d(
            self._cast_inputs(inputs),
            pool_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            impl=self.impl,
        )

    def compute_output_shape(self, input_shape):
        out_hw = [
            None if size is None else axis_padding(size, k, s, self.padding).out
            for size, k, s in zip(input_shape[1:3], self.pool_size, self.strides)
        ]
        return (input_shape[0], *out_hw, input_shape[3])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config


MaxPool2D = MaxPooling2D
