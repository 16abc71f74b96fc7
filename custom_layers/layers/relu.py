"""ReLU with a hand-written backward (``custom_layers.ops.relu``)."""

from __future__ import annotations

import keras

from custom_layers import ops


@keras.saving.register_keras_serializable(package="custom_layers")
class ReLU(keras.layers.ReLU):
    """Drop-in twin of ``keras.layers.ReLU`` for the plain rectifier max(x, 0).

    Input and output shape: any, unchanged. The backward passes dy where the
    output is positive. ``max_value``, ``negative_slope`` and ``threshold`` other
    than their defaults raise a ValueError (their backward is not written here),
    rather than falling back to stock maths.
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
        return ops.relu(inputs)
