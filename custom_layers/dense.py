"""``Dense``: drop-in for ``keras.layers.Dense`` with a hand-written backward."""

from __future__ import annotations

from typing import Any, Dict

import keras

from custom_layers import ops
from custom_layers.base import WeightedLayer


@keras.saving.register_keras_serializable(package="custom_layers")
class Dense(WeightedLayer):
    """Fully connected layer whose gradient is ``custom_layers.ops.dense``'s.

    Same arguments, weights (``kernel`` (D, M), then ``bias`` (M,)) and
    outputs as ``keras.layers.Dense``; applied to the last axis of inputs of
    any rank ≥ 2.

    Args:
        units: M, output features.
        activation: any Keras activation; "relu" uses a hand-written gradient.
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: as in Keras.
        quantization_config: must be None (the key stock configs carry).
        impl: "tf" (default) or "numpy" (CPU only, slow, no XLA, not exportable).

    Input shape:
        (N, ..., D) with D known.

    Output shape:
        (N, ..., M).

    Example:

    >>> Dense(10)(tf.zeros([4, 20])).shape
    TensorShape([4, 10])
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        quantization_config=None,
        impl: str = "tf",
        **kwargs,
    ):
        super().__init__(impl=impl, activity_regularizer=activity_regularizer, **kwargs)
        if quantization_config is not None:
            # Stock configs carry the key (None when unquantized); quantized maths is out of scope.
            raise ValueError("custom_layers.Dense has no hand-written quantized backward. "
                             f"Received: quantization_config={quantization_config!r}")
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"units must be a positive integer. Received: units={units!r}")
        self.units = units
        self._set_weight_args(
            activation, use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
        )
        self.input_spec = keras.InputSpec(min_ndim=2)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name!r} (Dense) expects inputs of shape (N, ..., D) "
                f"with D known. Received input_shape={tuple(input_shape)}"
            )
        features = input_shape[-1]
        self._add_kernel_and_bias((features, self.units), self.units)
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: features})

    def call(self, inputs):
        outputs = ops.dense(
            self._cast_inputs(inputs),
            *self._weight_values(),
            activation=self._fused_activation(),
            impl=self.impl,
        )
        return self._apply_unfused_activation(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                **self._weight_config(),
                "quantization_config": None,
            }
        )
        return config
