"""``Activation``: drop-in for ``keras.layers.Activation`` with hand-written backwards."""

from __future__ import annotations

from typing import Any, Dict

import keras

from custom_layers.layers.base import activation_names, cast_real_inputs, hand_written_activation
from custom_layers.ops.custom_op import normalize_impl


@keras.saving.register_keras_serializable(package="custom_layers")
class Activation(keras.layers.Activation):
    """An activation function whose gradient is a hand-written op of ``custom_layers.ops``.

    A subclass of the stock layer (same argument, config and masking). Every
    activation ``keras.activations`` names has a hand-written backward except
    threshold (it has no defaults to call it by name with) and sparsemax
    (Keras's sums the cumulative sums, so its outputs do not sum to 1 once two
    logits are in the support; a twin would copy that or differ from stock):
    relu, relu6, leaky_relu (its default slope 0.2), gelu (exact, Keras's
    default), softmax, log_softmax and glu (last axis), linear, and the
    elementwise rules of ``custom_layers.ops.pointwise`` (sigmoid, tanh, elu,
    selu, silu/swish, hard_silu, softplus, ...). Any
    other (a user's function) raises a ValueError when the layer is made,
    rather than training on TensorFlow's autodiff.

    Args:
        activation: a name or a ``keras.activations`` function.
        impl: "tf" (default) or "numpy" (all but softmax and log_softmax run
            their NumPy reference).

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> Activation("gelu")(tf.constant([[0.0, 1.0]])).numpy().round(4)
    array([[0.    , 0.8413]], dtype=float32)
    """

    def __init__(self, activation, impl: str = "tf", **kwargs):
        super().__init__(activation, **kwargs)
        self.impl = normalize_impl(impl)
        self.supports_jit = self.impl == "tf"
        self._op = hand_written_activation(self.activation, self.impl)
        if self._op is None:
            raise ValueError(f"custom_layers.Activation has hand-written backwards for "
                             f"{activation_names()}. Received: activation={activation!r}")

    def call(self, inputs):
        return self._op(cast_real_inputs(self, inputs))

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "impl": self.impl}
