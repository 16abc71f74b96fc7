"""What the custom layers share: input casting and refusing LoRA."""

from __future__ import annotations

from typing import Any, Dict

import keras
import tensorflow as tf


def refuse_lora(layer_name: str, kwargs: Dict[str, Any]) -> None:
    """Raises ValueError if the (stock) constructor kwargs ask for LoRA."""
    if kwargs.get("lora_rank"):
        raise ValueError(f"custom_layers.{layer_name} has no hand-written LoRA backward. "
                         f"Received: lora_rank={kwargs['lora_rank']!r}")


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
