"""``Softmax``: drop-in for ``keras.layers.Softmax`` with a hand-written backward."""

from __future__ import annotations

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class Softmax(keras.layers.Softmax):
    """Keras's softmax layer whose gradient is ``custom_layers.ops.softmax``'s,
    y ⊙ (dy − Σ dy ⊙ y), over ``axis`` (an int or a tuple of ints).

    A subclass of the stock layer (same argument, config and masking): a mask
    sets the masked logits to a large negative number and their outputs to 0
    inside the op, so their gradient is hand-written too.

    Args:
        axis: the axis or axes to normalise over (default -1).

    Call arguments:
        inputs: logits, any shape.
        mask: optional, broadcastable to inputs; True (or > 0.5) keeps a logit.

    Example:

    >>> Softmax()(tf.constant([[0.0, 0.0]])).numpy()
    array([[0.5, 0.5]], dtype=float32)
    """

    def call(self, inputs, mask=None):
        if mask is not None:
            _check_broadcastable(mask.shape, inputs.shape)
        axis = self.axis[0] if isinstance(self.axis, (list, tuple)) and len(self.axis) == 1 \
            else self.axis
        return ops.softmax(cast_real_inputs(self, inputs), axis, mask)


def _check_broadcastable(mask_shape, inputs_shape) -> None:
    """Keras's own checks: the mask has no more axes than the inputs, each 1 or theirs."""
    if len(mask_shape) > len(inputs_shape):
        raise ValueError(f"The `mask` must be broadcastable to `inputs` and must not have more "
                         f"dimensions. Received: inputs.shape={inputs_shape}, "
                         f"mask.shape={mask_shape}")
    for m, i in zip(list(mask_shape)[::-1], list(inputs_shape)[::-1]):
        if m is not None and i is not None and m not in (1, i):
            raise ValueError(f"The `mask` must be broadcastable to `inputs`: each mask dimension "
                             f"must be 1 or the input's. Received: inputs.shape={inputs_shape}, "
                             f"mask.shape={mask_shape}")
