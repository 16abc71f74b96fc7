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

from typing import List, Tuple

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


def tta_views(images: tf.Tensor, level: str) -> List[Tuple[float, tf.Tensor]]:
    """(weight, view) pairs of (N, H, W, C) images; the weights sum to 1."""
    if level not in TTA_LEVELS:
        raise ValueError(f"tta must be one of {TTA_LEVELS}. Received: {level!r}")
    if level == "none":
        return [(1.0, images)]
    views = [(0.5, images), (0.5, _mirror(images))]
    if level == "mirror":
        return views
    shifted = [(0.125, view) for shift in _shifts(images) for view in (shift, _mirror(shift))]
    return [(weight / 2, view) for weight, view in views] + shifted


def predict(model: keras.Model, dataset: tf.data.Dataset,
            level: str = "none") -> Tuple[np.ndarray, np.ndarray]:
    """The model's (N, K) probabilities on ``dataset``'s image batches averaged over
    the views, and its probabilities on the plain images (the first view, so one
    pass gives both)."""
    if level not in TTA_LEVELS:
        raise ValueError(f"tta must be one of {TTA_LEVELS}. Received: {level!r}")
    if level == "none":
        plain = model.predict(dataset, verbose=0)
        return plain, plain
    averaged, plain = [], []
    for images in dataset:
        outputs = [(weight, model.predict_on_batch(view).astype(np.float64))
                   for weight, view in tta_views(images, level)]
        averaged.append(sum(weight * output for weight, output in outputs))
        plain.append(outputs[0][1])
    return (np.concatenate(averaged).astype(np.float32),
            np.concatenate(plain).astype(np.float32))
