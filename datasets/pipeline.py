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


FLIPS = ("random", "alternating", "none")
PAD_MODES = ("constant", "reflect")


def crop_batch(images: tf.Tensor, seed: tf.Tensor, padding: int = CROP_PADDING,
               pad_mode: str = "constant") -> tf.Tensor:
    """A random crop of each image after padding by ``padding`` pixels.

    Args:
        images: (N, H, W, C) float32.
        seed: int32 (2,) stateless seed.
        padding: pixels added on each side (0: the images unchanged).
        pad_mode: "constant" (zeros) or "reflect" (mirrored, edge excluded).

    Returns:
        (N, H, W, C) float32.
    """
    if not padding:
        return images
    n, h, w, c = tf.unstack(tf.shape(images))
    padded = tf.pad(images, [[0, 0], [padding] * 2, [padding] * 2, [0, 0]],
                    mode=pad_mode.upper())
    offsets = tf.random.stateless_uniform([n, 2], seed, 0, 2 * padding + 1, tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]
    cols = offsets[:, 1:] + tf.range(w)[None, :]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def flip_batch(images: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
    """Each image mirrored left-right where ``flip`` (N,) is true."""
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def alternating_flips(base: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """Which images to mirror in ``epoch`` under the alternating scheme.

    Epoch 0 mirrors a fixed random half (``base``, (N,) bool per example); every
    later epoch mirrors exactly the images the one before did not, so each
    image is seen both ways in any two consecutive epochs (random flips leave
    a quarter of the images unflipped, or flipped, two epochs running).
    """
    return tf.math.logical_xor(base, tf.math.equal(epoch % 2, 1))


def augment_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random crop after 4-pixel zero padding and random horizontal flip, per image.

    Args:
        images: (N, H, W, C) float32.
        seed: int32 (2,) stateless seed.

    Returns:
        (N, H, W, C) float32.
    """
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed + 1) < 0.5
    return flip_batch(crop_batch(images, seed), flip)


def train_dataset(split: Split, batch_size: int, seed: int, augment: bool = False,
                  normalization: Normalization = None, start_step: int = 0,
                  flip: str = "random", crop_padding: int = CROP_PADDING,
                  pad_mode: str = "constant") -> tf.data.Dataset:
    """Endless batches of (images float32, labels int32), from step ``start_step`` on.

    Epochs are exact: epoch e = step // (N // batch_size) visits a fresh
    permutation of the examples (the last partial batch is dropped), and every
    batch is a function of (seed, step) alone, so a resumed run continues
    exactly where it stopped. Images are scaled (and normalised, see
    ``_scale``); with ``augment`` each is cropped after padding by
    ``crop_padding`` pixels (``pad_mode``) and mirrored as ``flip`` says:
    "random" (each image, each step, with probability ½), "alternating"
    (``alternating_flips``) or "none".
    """
    if flip not in FLIPS:
        raise ValueError(f"flip must be one of {FLIPS}. Received: {flip!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}. Received: {pad_mode!r}")
    count = len(split.labels)
    per_epoch = count // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {count} examples")
    images, labels = tf.constant(split.images), tf.constant(split.labels)
    base_flips = tf.random.stateless_uniform([count], [seed, -1]) < 0.5

    def batch(step):
        epoch, index = step // per_epoch, step % per_epoch
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), tf.stack([tf.cast(seed, tf.int64), epoch]))
        # A static batch size: the hand-written backwards are planned from static shapes.
        picked = tf.reshape(order[index * batch_size:(index + 1) * batch_size], [batch_size])
        x = _scale(tf.gather(images, picked), normalization)
        if augment:
            step_seed = tf.cast(tf.stack([seed, step]), tf.int32)
            x = crop_batch(x, step_seed, crop_padding, pad_mode)
            if flip == "random":
                x = flip_batch(x, tf.random.stateless_uniform([batch_size], step_seed + 1) < 0.5)
            elif flip == "alternating":
                x = flip_batch(x, alternating_flips(tf.gather(base_flips, picked), epoch))
        return x, tf.gather(labels, picked)

    steps = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
    return steps.map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def eval_dataset(split: Split, batch_size: int,
                 normalization: Normalization = None) -> tf.data.Dataset:
    """All examples once, in order, unaugmented."""
    ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).batch(batch_size)
    return ds.map(lambda x, y: (_scale(x, normalization), y)).prefetch(tf.data.AUTOTUNE)


def as_float(images: np.ndarray, count: Optional[int] = None,
             normalization: Normalization = None) -> np.ndarray:
    """The first ``count`` uint8 images as float32 in [0, 1], normalised if given:
    as the model sees them (``_scale``'s NumPy twin)."""
    images = images[:count].astype(np.float32) / 255.0
    if normalization is not None:
        mean, std = normalization
        images = (images - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return images
