"""``Conv2D``: drop-in for ``keras.layers.Conv2D`` with a hand-written backward."""

from __future__ import annotations

from typing import Any, Dict

import keras

from custom_layers import ops
from custom_layers.base import WeightedLayer, resolve_channels_last
from custom_layers.padding import axis_padding, normalize_padding, normalize_tuple


@keras.saving.register_keras_serializable(package="custom_layers")
class Conv2D(WeightedLayer):
    """2-D convolution layer whose gradient is ``custom_layers.ops.conv2d``'s.

    Same arguments, weights (``kernel`` (KH, KW, C, F), then ``bias`` (F,)) and
    outputs as ``keras.layers.Conv2D`` for what it supports, so
    ``set_weights(stock.get_weights())`` works both ways.

    Args:
        filters: F, number of output channels.
        kernel_size: int or (KH, KW).
        strides: int or (SH, SW).
        padding: "valid" or "same" (case-insensitive).
        data_format: None or "channels_last"; channels-first is refused.
        dilation_rate: must be 1 (refused otherwise).
        groups: must be 1 (refused otherwise).
        activation: any Keras activation; "relu" uses a hand-written gradient.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: as in Keras.
        impl: "tf" (default) or "numpy" (the NumPy reference; CPU only, slow,
            no XLA, not exportable).

    Input shape:
        (N, H, W, C) with H and W known.

    Output shape:
        (N, HO, WO, F): HO = ceil(H / SH) for "same",
        (H - KH) // SH + 1 for "valid".

    Raises:
        ValueError: for unsupported or invalid arguments, and when built on an
            input that is not 4-D or has unknown channels.

    Example:

    >>> layer = Conv2D(32, 5, padding="same", activation="relu")
    >>> layer(tf.zeros([2, 28, 28, 1])).shape
    TensorShape([2, 28, 28, 32])
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=(1, 1),
        padding: str = "valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        impl: str = "tf",
        **kwargs,
    ):
        super().__init__(impl=impl, activity_regularizer=activity_regularizer, **kwargs)
        if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(
                f"filters must be a positive integer. Received: filters={filters!r}"
            )
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)
        self.data_format = resolve_channels_last(data_format, type(self).__name__)
        if normalize_tuple(dilation_rate, "dilation_rate") != (1, 1):
            raise ValueError(
                "custom_layers.Conv2D supports only dilation_rate=1. "
                f"Received: dilation_rate={dilation_rate!r}"
            )
        if groups != 1:
            raise ValueError(
                f"custom_layers.Conv2D supports only groups=1. Received: groups={groups!r}"
            )
        self._set_weight_args(
            activation, use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
        )
        self.input_spec = keras.InputSpec(ndim=4)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) expects inputs of shape "
                f"(N, H, W, C) with C known. Received input_shape={tuple(input_shape)}"
            )
        channels = input_shape[-1]
        self._add_kernel_and_bias(self.kernel_size + (channels, self.filters), self.filters)
        self.input_spec = keras.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        outputs = ops.conv2d(
            self._cast_inputs(inputs),
            *self._weight_values(),
            strides=self.strides,
            padding=self.padding,
            activation=self._fused_activation(),
            impl=self.impl,
        )
        return self._apply_unfused_activation(outputs)

    def compute_output_shape(self, input_shape):
        out_hw = [
            None if size is None else axis_padding(size, k, s, self.padding).out
            for size, k, s in zip(input_shape[1:3], self.kernel_size, self.strides)
        ]
        return (input_shape[0], *out_hw, self.filters)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": (1, 1),
                "groups": 1,
                **self._weight_config(),
            }
        )
        return config
