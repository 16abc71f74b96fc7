"""What every layer twin shares: input casting, the channels_first transpose, refusing LoRA."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.ops.custom_op import normalize_impl
from custom_layers.ops import pointwise


class ConvolutionTwin:
    """What the convolution twins add to their stock base (put first in the bases):
    ``impl``, no LoRA, and the kernel read in its own dtype (no autocast)."""

    def __init__(self, *args, impl: str = "tf", **kwargs):
        refuse_lora(type(self).__name__, kwargs)
        super().__init__(*args, **kwargs)
        self.impl = normalize_impl(impl)
        self.supports_jit = self.impl == "tf"
        self._autocast = False

    def enable_lora(self, *args, **kwargs):
        raise ValueError(f"custom_layers.{type(self).__name__} has no hand-written LoRA backward")

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "impl": self.impl}


class NoLoraOrQuantization:
    """What the twins of Keras's quantizable weight layers (``Dense``, ``EinsumDense``,
    ``Embedding``) add to their stock base (put first in the bases): LoRA and
    quantization (a ``quantization_config`` or a quantized dtype policy such as
    "int8_from_float32", whose integer kernel the hand-written ops would read as
    plain weights), which have no hand-written backward, raise a ValueError
    (``quantization_config=None``, which stock configs carry, is accepted)."""

    def __init__(self, *args, **kwargs):
        name = type(self).__name__
        refuse_lora(name, kwargs)
        if kwargs.get("quantization_config") is not None:
            raise ValueError(f"custom_layers.{name} has no hand-written quantized backward. "
                             f"Received: quantization_config={kwargs['quantization_config']!r}")
        super().__init__(*args, **kwargs)
        if self.quantization_mode is not None:
            raise ValueError(f"custom_layers.{name} has no hand-written quantized backward. "
                             f"Received: dtype={self.dtype_policy.name!r}")

    def enable_lora(self, *args, **kwargs):
        raise ValueError(f"custom_layers.{type(self).__name__} has no hand-written LoRA backward")

    def quantize(self, *args, **kwargs):
        raise ValueError(f"custom_layers.{type(self).__name__} has no hand-written quantized "
                         "backward")


class KernelTwin:
    """What the depthwise, separable and transposed twins add to their stock base
    (put first in the bases): strides with dilation refused, the kernels read in
    their own dtype (no autocast)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        refuse_strided_dilation(self)
        self._autocast = False


def refuse_lora(layer_name: str, kwargs: Dict[str, Any]) -> None:
    """Raises ValueError if the (stock) constructor kwargs ask for LoRA."""
    if kwargs.get("lora_rank"):
        raise ValueError(f"custom_layers.{layer_name} has no hand-written LoRA backward. "
                         f"Received: lora_rank={kwargs['lora_rank']!r}")


def refuse_strided_dilation(layer: keras.layers.Layer) -> None:
    """Raises ValueError if a layer asks for strides and dilation both above 1, which
    TensorFlow's depthwise and transposed kernels cannot do: fail when made, not at
    the first call."""
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ValueError("strides > 1 cannot be combined with dilation_rate > 1. Received: "
                         f"strides={layer.strides}, dilation_rate={layer.dilation_rate}")


def real_inputs(layer: keras.layers.Layer, inputs) -> tf.Tensor:
    """``inputs`` as a tensor of floats, integers or bools.

    Raises:
        ValueError: for complex or string inputs, naming the layer.
    """
    inputs = tf.convert_to_tensor(inputs)
    if not (inputs.dtype.is_floating or inputs.dtype.is_integer or inputs.dtype == tf.bool):
        raise ValueError(f"{layer.__class__.__name__} '{layer.name}' takes real-valued inputs "
                         f"(float, int or bool). Received: inputs.dtype={inputs.dtype.name}")
    return inputs


def cast_real_inputs(layer: keras.layers.Layer, inputs) -> tf.Tensor:
    """Inputs in ``layer``'s compute dtype: floats and integers (e.g. raw pixels) are cast.

    Integers must not reach the ops as they are: the weights would be cast
    to int and the result silently truncated (a mean of [1, 2, 2, 2] to 1).

    Raises:
        ValueError: for complex or string inputs, naming the layer.
    """
    inputs = real_inputs(layer, inputs)
    if inputs.dtype != layer.compute_dtype:
        inputs = tf.cast(inputs, layer.compute_dtype)
    return inputs


def on_height_one(op: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """A 2-D channels-last ``op`` as a 1-D one: (N, steps, C) runs as (N, 1, steps, C).

    The 1-D twins pass square strides and dilations (s, s), (d, d): on a height
    of 1 with a kernel height of 1 the vertical ones change nothing, and
    TensorFlow's depthwise kernel takes square strides only.
    """
    return lambda x: tf.squeeze(op(tf.expand_dims(x, 1)), 1)


def in_channels_last(layer: keras.layers.Layer, op: Callable[[tf.Tensor], tf.Tensor],
                     x: tf.Tensor) -> tf.Tensor:
    """``op`` (a channels-last -> channels-last function, NHWC for images)
    applied to x in ``layer.data_format``.

    channels_first inputs (any rank) are transposed to channels-last and back:
    TensorFlow's CPU convolutions and poolings are NHWC-only (stock Keras
    transposes too).

    Raises:
        ValueError: naming the layer, if x is not 4-D with its height and
            width known when traced (the backward is planned from them).
    """
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    if x.shape.rank == 4 and None in (x.shape[2:] if channels_first else x.shape[1:3]):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' needs the input's height and width known "
            f"when it is traced: its hand-written backward is planned from them. Received "
            f"shape {x.shape}; give the model a fixed input size, e.g. keras.Input((32, 32, 3))")
    if not channels_first:
        return op(x)
    rank = x.shape.rank
    to_last, to_first = [0, *range(2, rank), 1], [0, rank - 1, *range(1, rank - 1)]
    return tf.transpose(op(tf.transpose(x, to_last)), to_first)


def hand_written_activation(activation: Callable, impl: str = "tf") -> Optional[Callable]:
    """The op of ``custom_layers.ops`` computing the Keras ``activation`` function
    with a hand-written gradient, or None if there is none (a user's own function).

    ``keras.activations.gelu`` maps to the exact GELU (its default); a lambda
    or partial asking for the tanh form is not recognised.
    """
    if activation in (None, keras.activations.linear):
        return lambda x: x
    if activation is keras.activations.relu:
        return lambda x: ops.relu(x, impl=impl)
    if activation is keras.activations.relu6:
        return lambda x: ops.relu_general(x, max_value=6.0, impl=impl)
    if activation is keras.activations.leaky_relu:  # its default slope, 0.2
        return lambda x: ops.relu_general(x, negative_slope=0.2, impl=impl)
    if activation is keras.activations.gelu:
        return lambda x: ops.gelu(x, impl=impl)
    if activation is keras.activations.softmax:
        return ops.softmax  # over the last axis, Keras's default (TF ops for either impl)
    if activation is keras.activations.log_softmax:
        return ops.log_softmax
    if activation is keras.activations.glu:  # halves the last axis
        return ops.glu
    name = pointwise.rule_name(activation)
    if name is not None:
        return lambda x: ops.activation(name, x, impl=impl)
    return None


def activate_after_op(layer: keras.layers.Layer, y: tf.Tensor, fused: bool) -> tf.Tensor:
    """``layer.activation`` applied to its op's output ``y``, unless the op fused it:
    a hand-written op where there is one, else the user's function (Keras's autodiff).
    ``activation`` may have been set to None after construction, as stock allows."""
    if fused or layer.activation is None:
        return y
    impl = getattr(layer, "impl", "tf")
    return (hand_written_activation(layer.activation, impl) or layer.activation)(y)


def activation_names() -> str:
    """The activations with a hand-written gradient, for error messages."""
    return ", ".join(["linear", "relu", "relu6", "leaky_relu", "gelu", "softmax", "log_softmax",
                      "glu", *pointwise.RULES])
