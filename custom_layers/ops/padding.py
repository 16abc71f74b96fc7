"""Zero padding and cropping, each the other's backward: NumPy reference and TF ops.

    zero_pad  y = x with (before, after) zeros on each axis    dx = dy cropped by the same amounts
    crop      y = x without (before, after) on each axis       dx = dy padded back with zeros

Keras's ZeroPadding1D/2D/3D and Cropping1D/2D/3D are these on their spatial axes.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

Pads = Sequence[Tuple[int, int]]


def _check(amounts: Pads, rank: int, what: str) -> List[Tuple[int, int]]:
    amounts = [tuple(int(v) for v in pair) for pair in amounts]
    if len(amounts) != rank or any(len(p) != 2 or min(p) < 0 for p in amounts):
        raise ValueError(f"{what} needs one (before, after) pair of non-negative sizes per "
                         f"axis of the rank-{rank} input. Received: {amounts}")
    return amounts


def _crop_slices(shape: Sequence, amounts: Pads):
    return tuple(slice(b, None if a == 0 else -a) for (b, a), _ in zip(amounts, shape))


def zero_pad_forward(x: np.ndarray, paddings: Pads):
    """x: any shape; paddings: (before, after) per axis. Returns out and the cache."""
    paddings = _check(paddings, x.ndim, "zero_pad")
    return np.pad(x, paddings), paddings


def zero_pad_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx: dout without the padding."""
    return dout[_crop_slices(dout.shape, cache)]


def crop_forward(x: np.ndarray, croppings: Pads):
    """x: any shape; croppings: (before, after) per axis, smaller than the axis. Returns out, cache."""
    croppings = _check(croppings, x.ndim, "crop")
    return x[_crop_slices(x.shape, croppings)], croppings


def crop_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx: dout with zeros where the forward cropped."""
    return np.pad(dout, cache)


def zero_pad(x: tf.Tensor, paddings: Pads) -> tf.Tensor:
    """``tf.pad(x, paddings)`` (zeros) whose gradient crops dy back to x."""
    x = tf.convert_to_tensor(x)
    paddings = _check(paddings, x.shape.rank, "zero_pad")

    def forward(x):
        return tf.pad(x, paddings), None

    def backward(dy, _):
        return (dy[_crop_slices(dy.shape, paddings)],)

    return hand_written_op(forward, backward, x)


def crop(x: tf.Tensor, croppings: Pads) -> tf.Tensor:
    """x without ``croppings`` on each axis, whose gradient pads dy back with zeros.

    Raises:
        ValueError: if a cropping leaves nothing of an axis of known size.
    """
    x = tf.convert_to_tensor(x)
    croppings = _check(croppings, x.shape.rank, "crop")
    for size, (b, a) in zip(x.shape, croppings):
        if size is not None and b + a >= size:
            raise ValueError(f"Values in `cropping` argument should be smaller than the "
                             f"corresponding spatial dimension of the input. Received: "
                             f"inputs.shape={x.shape}, cropping={croppings}")

    def forward(x):
        return x[_crop_slices(x.shape, croppings)], None

    def backward(dy, _):
        return (tf.pad(dy, croppings),)

    return hand_written_op(forward, backward, x)
