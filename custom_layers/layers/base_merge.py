"""What the merge-layer twins share: Keras's pairwise chaining, with hand-written ops."""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf
from keras.src.backend import get_keras_mask, set_keras_mask

from custom_layers.ops import merging


def chain(op: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], inputs: Sequence[tf.Tensor]) -> tf.Tensor:
    """inputs[0] op inputs[1] op ..., left to right as Keras's Add, Average and Multiply."""
    output = inputs[0]
    for x in inputs[1:]:
        output = op(output, x)
    return output


def masked_chain(op: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
                 inputs: Sequence[tf.Tensor]) -> tf.Tensor:
    """Keras's ``Merge._apply_merge_op_and_or_mask`` (Maximum, Minimum) with the
    hand-written ``merging.select`` where Keras masks with ``ops.where``."""
    output, output_mask = None, None
    for x in inputs:
        mask = get_keras_mask(x)
        if mask is not None:
            mask = tf.broadcast_to(tf.expand_dims(mask, -1), tf.shape(x))
        if output is None:
            output, output_mask = x, mask
            continue
        if mask is not None:
            x = merging.select(mask, x, output)
        if output_mask is not None:
            output = merging.select(output_mask, output, x)
        output_mask = (tf.logical_or(output_mask, mask)
                       if mask is not None and output_mask is not None else None)
        output = op(output, x)
    if output_mask is not None:
        set_keras_mask(output, tf.reduce_any(output_mask, axis=-1))
    return output
