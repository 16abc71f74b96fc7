"""``MaxPooling2D``: drop-in for ``keras.layers.MaxPooling2D``, hand-written backward."""

from __future__ import annotations

from typing import Any, Dict

import keras

from custom_layers import ops
from custom_layers.ops.custom_op import normalize_impl
from custom_layers.layers.base import cast_real_inputs, in_channels_last


@keras.saving.register_keras_serializable(package="custom_layers")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """Max pooling whose gradient goes to each window's first maximum.

    A subclass of the stock layer: arguments, their checks, ``built``,
    ``compute_output_shape`` and ``get_config`` are Keras's own; ``call``
    hands the maths to ``custom_layers.ops.max_pool2d``. Integer inputs are
    cast to the compute dtype.

    Args:
        pool_size, strides, padding, data_format: as in Keras (windows may
            overlap; padded positions never win).
        impl: "tf" (default) or "numpy" (CPU only, slow, no XLA, not exportable).

    Input shape:
        (N, H, W, C), or (N, C, H, W) with channels_first; H and W known.

    Output shape:
        (N, HO, WO, C) or (N, C, HO, WO): HO = ceil(H / SH) for "same",
        (H - PH) // SH + 1 for "valid".

    Example:

    >>> MaxPooling2D(2)(tf.zeros([1, 28, 28, 32])).shape
    TensorShape([1, 14, 14, 32])
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", data_format=None,
                 impl: str = "tf", **kwargs):
        super().__init__(pool_size=pool_size, strides=strides, padding=padding,
                         data_format=data_format, **kwargs)
        self.impl = normalize_impl(impl)
        self.supports_jit = self.impl == "tf"

    def call(self, inputs):
        def nhwc(x):
            return ops.max_pool2d(x, pool_size=self.pool_size, strides=self.strides,
                                  padding=self.padding, impl=self.impl)

        return in_channels_last(self, nhwc, cast_real_inputs(self, inputs))

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "impl": self.impl}


MaxPool2D = MaxPooling2D
