"""tf.data pipelines: scale, (augment), shuffle, batch, prefetch."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from datasets.splits import Split

CROP_PADDING = 4


Normalization = Optional[Tuple[np.ndarray, np.ndarray]]


def _scale(images: tf.Tensor, normalization: Normalization = None) -> tf.Tensor:
    """uint8 -> float32 in [0, 1], then (x - mean) / std per channel if given."""
    images = tf.cast(images, tf.float32) / 255.0
    if normalization is not None:
        mean, std = normalization
        images = (images - mean) / std
    return images


def augment_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random crop after 4-pixel zero padding and random horizontal flip, per image.

    Args:
        images: (N, H, W, C) float32.
        seed: int32 (2,) stateless seed.

    Returns:
        (N, H, W, C) float32.
    """
    n, h, w, c = tf.unstack(tf.shape(images))
    padded = tf.pad(images, [[0, 0], [CROP_PADDING] * 2, [CROP_PADDING] * 2, [0, 0]])
    offsets = tf.random.stateless_uniform([n, 2], seed, 0, 2 * CROP_PADDING + 1, tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]
    cols = offsets[:, 1:] + tf.range(w)[None, :]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([n, 1, 1, 1], seed + 1) < 0.5
    return tf.where(flip, tf.reverse(cropped, axis=[2]), cropped)


def train_dataset(split: Split, batch_size: int, seed: int, augment: bool = False,
                  normalization: Normalization = None) -> tf.data.Dataset:
    """Endless shuffled batches of (images float32, labels int32).

    Images are scaled (and normalised, see ``_scale``); with ``augment`` each
    is randomly cropped after zero padding and flipped.

    The order is a function of ``seed`` alone, so a resumed run that passes
    a new seed per round gets fresh but reproducible batches.
    """
    ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
    ds = ds.shuffle(len(split.labels), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x, y: (_scale(x, normalization), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda xy, i: (augment_batch(xy[0], tf.stack([seed, tf.cast(i, tf.int32)])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(split: Split, batch_size: int,
                 normalization: Normalization = None) -> tf.data.Dataset:
    """All examples once, in order, unaugmented."""
    ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).batch(batch_size)
    return ds.map(lambda x, y: (_scale(x, normalization), y)).prefetch(tf.data.AUTOTUNE)


def as_float(images: np.ndarray, count: Optional[int] = None) -> np.ndarray:
    """The first ``count`` images scaled to [0, 1], as the model sees them."""
    return images[:count].astype(np.float32) / 255.0
