"""What every custom layer shares: the implementation switch, input casting,
channels-last checks and which activation the ops fuse."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from custom_layers import ops


def resolve_channels_last(data_format: Optional[str], layer_name: str) -> str:
    """Returns "channels_last", or raises ValueError for anything else.

    ``None`` means Keras' global ``image_data_format()``, as in stock layers.
    """
    resolved = data_format or keras.config.image_data_format()
    if resolved != "channels_last":
        raise ValueError(
            f"{layer_name} supports only data_format='channels_last' (NHWC). "
            f"Received: data_format={data_format!r} (resolved to {resolved!r})"
        )
    return resolved


def cast_real_inputs(layer: keras.layers.Layer, inputs) -> tf.Tensor:
    """Inputs in ``layer``'s compute dtype: floats and integers (e.g. raw pixels) are cast.

    Integers must not reach the ops as they are: the weights would be cast
    to int and the result silently truncated to zeros.

    Raises:
        ValueError: for complex or string inputs, naming the layer.
    """
    inputs = tf.convert_to_tensor(inputs)
    if not (inputs.dtype.is_floating or inputs.dtype.is_integer or inputs.dtype == tf.bool):
        raise ValueError(f"{layer.__class__.__name__} '{layer.name}' takes real-valued inputs "
                         f"(float, int or bool). Received: inputs.dtype={inputs.dtype.name}")
    if inputs.dtype != layer.compute_dtype:
        inputs = tf.cast(inputs, layer.compute_dtype)
    return inputs


class CustomGradientLayer(keras.layers.Layer):
    """Base of the custom layers: a thin shell over ``custom_layers.ops``.

    Keras autocasting is switched off so that ``call`` sees the float32
    variables: the ops cast them for the forward and return float32 weight
    gradients under mixed precision. Inputs are cast to the compute dtype here
    instead, which is what autocasting would have done to them.

    ``impl="numpy"`` runs the NumPy reference through ``tf.numpy_function``:
    CPU only, slow, not compilable with XLA (``supports_jit`` is False, so
    ``model.fit`` with ``jit_compile="auto"`` turns XLA off) and not
    exportable to a SavedModel.
    """

    def __init__(self, impl: str = "tf", **kwargs):
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.impl = ops.normalize_impl(impl)
        self.supports_jit = self.impl == "tf"

    def _cast_inputs(self, inputs) -> tf.Tensor:
        return cast_real_inputs(self, inputs)

    def _fused_activation(self) -> Optional[str]:
        # ReLU, the activation of the reference models, is fused into the op
        # with a hand-written gradient; others keep Keras' autodiff.
        return "relu" if getattr(self, "activation", None) is keras.activations.relu else None

    def _apply_unfused_activation(self, outputs: tf.Tensor) -> tf.Tensor:
        if self._fused_activation() or getattr(self, "activation", None) is None:
            return outputs
        return self.activation(outputs)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["impl"] = self.impl
        return config



_WEIGHT_ARGS = ("initializer", "regularizer", "constraint")
_WEIGHT_MODULES = {
    "initializer": keras.initializers,
    "regularizer": keras.regularizers,
    "constraint": keras.constraints,
}


class WeightedLayer(CustomGradientLayer):
    """A custom layer with a ``kernel``, an optional ``bias`` and an activation.

    Keeps the Keras arguments for both weights (``kernel_initializer``,
    ``bias_regularizer``, ...) and creates the weights in the stock order,
    kernel first, so weights interchange with the stock layers.
    """

    def _set_weight_args(self, activation, use_bias: bool, **weight_args) -> None:
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        for name, value in weight_args.items():
            kind = name.split("_", 1)[1]
            setattr(self, name, _WEIGHT_MODULES[kind].get(value))

    def _add_kernel_and_bias(self, kernel_shape, bias_size: int) -> None:
        self.kernel = self._add_named_weight("kernel", tuple(kernel_shape))
        self.bias = self._add_named_weight("bias", (bias_size,)) if self.use_bias else None

    def _add_named_weight(self, weight: str, shape):
        return self.add_weight(
            name=weight,
            shape=shape,
            **{arg: getattr(self, f"{weight}_{arg}") for arg in _WEIGHT_ARGS},
        )

    def _weight_values(self):
        return self.kernel.value, None if self.bias is None else self.bias.value

    def _weight_config(self) -> Dict[str, Any]:
        config = {
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
        }
        for weight in ("kernel", "bias"):
            for arg in _WEIGHT_ARGS:
                name = f"{weight}_{arg}"
                config[name] = _WEIGHT_MODULES[arg].serialize(getattr(self, name))
        return config
