"""Test-time augmentation: a prediction averaged over mirrored and shifted views.

    none              the image
    mirror            ½ image + ½ its mirror image
    mirror_translate  ½ (mirror level) + ½ the mirror level of the two one-pixel
                      shifts (up-left and down-right, reflect-padded)

The speed-run literature's six views (airbench): each costs one forward
pass, so evaluation takes 1, 2 or 6 times as long. Probabilities are
averaged (the models end in softmax). The first view is always the image
itself.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

import keras
import numpy as np
import tensorflow as tf

TTA_LEVELS = ("none", "mirror", "mirror_translate")


def _mirror(images: tf.Tensor) -> tf.Tensor:
    return tf.reverse(images, axis=[2])


def _shifts(images: tf.Tensor) -> List[tf.Tensor]:
    """The two one-pixel diagonal shifts, edges filled by reflection."""
    h, w = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return [padded[:, :h, :w, :], padded[:, 2:h + 2, 2:w + 2, :]]


def view_functions(level: str) -> List[Tuple[float, Callable[[tf.Tensor], tf.Tensor]]]:
    """(weight, view of (N, H, W, C) images) pairs; the weights sum to 1, the first
    view is the image itself."""
    if level not in TTA_LEVELS:
        raise ValueError(f"tta must be one of {TTA_LEVELS}. Received: {level!r}")
    plain = [(1.0, lambda images: images)]
    if level == "none":
        return plain
    views = [(0.5, plain[0][1]), (0.5, _mirror)]
    if level == "mirror":
        return views
    shifted = [(0.125, _shift_view(i, mirrored)) for i in (0, 1) for mirrored in (False, True)]
    return [(weight / 2, view) for weight, view in views] + shifted


def _shift_view(index: int, mirrored: bool) -> Callable[[tf.Tensor], tf.Tensor]:
    """The ``index``-th one-pixel shift of the images, mirrored or not."""
    def view(images: tf.Tensor) -> tf.Tensor:
        shifted = _shifts(images)[index]
        return _mirror(shifted) if mirrored else shifted

    return view


def tta_views(images: tf.Tensor, level: str) -> List[Tuple[float, tf.Tensor]]:
    """(weight, view) pairs of (N, H, W, C) images; the weights sum to 1."""
    return [(weight, view(images)) for weight, view in view_functions(level)]


def predict(model: keras.Model, dataset: tf.data.Dataset,
            level: str = "none") -> Tuple[np.ndarray, np.ndarray]:
    """The model's (N, K) probabilities on ``dataset``'s image batches averaged over
    the views, and its probabilities on the plain images (the first view, so one
    pass gives both)."""
    if level not in TTA_LEVELS:
        raise ValueError(f"tta must be one of {TTA_LEVELS}. Received: {level!r}")
    # One predict per view over the whole data set: Keras spreads its batches over
    # a distribution strategy's replicas (predict_on_batch under MirroredStrategy
    # returned half a batch).
    outputs = [(weight, model.predict(dataset.map(view), verbose=0).astype(np.float64))
               for weight, view in view_functions(level)]
    averaged = sum(weight * output for weight, output in outputs)
    return averaged.astype(np.float32), outputs[0][1].astype(np.float32)
