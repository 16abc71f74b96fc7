"""``Cropping1D``: drop-in for ``keras.layers.Cropping1D`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers.ops import padding


@keras.saving.register_keras_serializable(package="custom_layers")
class Cropping1D(keras.layers.Cropping1D):
    """Keras's 1-D cropping whose gradient is ``custom_layers.ops.crop``'s: dy
    padded back with zeros. Arguments, checks (a cropping must leave part of
    the axis) and config are Keras's own.

    Input shape:
        (N, steps, C).

    Example:

    >>> Cropping1D((1, 2))(tf.ones([1, 5, 3])).shape
    TensorShape([1, 2, 3])
    """

    def call(self, inputs):
        steps = inputs.shape[1]
        if steps is not None and sum(self.cropping) >= steps:  # stock's check and words
            raise ValueError("`cropping` parameter of `Cropping1D` layer must be smaller than "
                             f"the input length. Received: inputs.shape={inputs.shape}, "
                             f"cropping={self.cropping}")
        return padding.crop(inputs, ((0, 0), tuple(self.cropping), (0, 0)))
