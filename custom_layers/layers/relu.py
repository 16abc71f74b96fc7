"""``ReLU``: drop-in for ``keras.layers.ReLU`` (the plain rectifier) with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class ReLU(keras.layers.ReLU):
    """max(x, 0) whose gradient is ``custom_layers.ops.relu``'s (dy where the output is positive).

    A subclass of the stock layer: arguments, their checks and ``get_config``
    are Keras's own. ``max_value``, ``negative_slope`` and ``threshold`` other
    than their defaults raise a ValueError (their backward is not written
    here), rather than falling back to stock maths. Integer inputs are cast
    to the compute dtype.

    Args:
        max_value, negative_slope, threshold: as in Keras, at their defaults.

    Input shape:
        any. Output shape: the input's.

    Example:

    >>> ReLU()(tf.constant([[-1.0, 2.0]])).numpy()
    array([[0., 2.]], dtype=float32)
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(max_value=max_value, negative_slope=negative_slope,
                         threshold=threshold, **kwargs)
        for name, value, default in (("max_value", max_value, None),
                                     ("negative_slope", negative_slope, 0.0),
                                     ("threshold", threshold, 0.0)):
            if value != default:
                raise ValueError(f"custom_layers.ReLU supports only the plain rectifier; "
                                 f"{name} must be {default}. Received: {name}={value!r}")

    def call(self, inputs):
        return ops.relu(cast_real_inputs(self, inputs))
