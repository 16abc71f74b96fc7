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
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype.is_floating and inputs.dtype != self.compute_dtype:
            inputs = tf.cast(inputs, self.compute_dtype)
        return inputs

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

