"""``Dense``: drop-in for ``keras.layers.Dense`` with a hand-written backward."""

from __future__ import annotations

from typing import Any, Dict

import keras
import tensorflow as tf

from custom_layers import ops
from custom_layers.ops.custom_op import normalize_impl
from custom_layers.layers.base import NoLoraOrQuantization, activate_after_op, cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class Dense(NoLoraOrQuantization, keras.layers.Dense):
    """Fully connected layer whose gradient is ``custom_layers.ops.dense``'s.

    A subclass of the stock layer: arguments, their checks, weights (``kernel``
    (D, M), then ``bias`` (M,)), masking, ``built`` and ``get_config`` are
    Keras's own; ``call`` hands the maths to the op (dx = dy·Wᵀ, dW = xᵀ·dy,
    db = Σ dy), applied to the last axis of inputs of any rank ≥ 2. The kernel
    is read in its own dtype (no autocast), so under mixed precision dW and db
    accumulate in float32. ReLU is fused into the op; GELU and softmax
    are hand-written ops after it; other activations (a user's function) keep
    Keras's autodiff. LoRA and quantization raise a ValueError
    (``quantization_config=None``, which stock configs carry, is accepted).

    Args:
        units, activation, use_bias, kernel_*/bias_*, activity_regularizer: as
            in Keras.
        impl: "tf" (default) or "numpy" (CPU only, slow, no XLA, not exportable).

    Input shape:
        (N, ..., D) with D known.

    Output shape:
        (N, ..., M).

    Example:

    >>> Dense(10)(tf.zeros([4, 20])).shape
    TensorShape([4, 10])
    """

    def __init__(self, *args, impl: str = "tf", **kwargs):
        super().__init__(*args, **kwargs)
        self.impl = normalize_impl(impl)
        self.supports_jit = self.impl == "tf"
        self._autocast = False

    def call(self, inputs, training=None):
        relu = self.activation is keras.activations.relu
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        activation = "relu" if relu else None
        if isinstance(inputs, tf.SparseTensor):
            if self.impl != "tf":
                raise ValueError("custom_layers.Dense takes sparse inputs only with impl='tf'")
            y = ops.sparse_dense(tf.cast(inputs, self.compute_dtype), kernel, bias, activation)
        else:
            y = ops.dense(cast_real_inputs(self, inputs), kernel, bias, activation, self.impl)
        # ``activation`` may have been set to None after construction, as stock allows.
        return activate_after_op(self, y, fused=relu)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "impl": self.impl}
