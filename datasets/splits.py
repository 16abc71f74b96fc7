"""The arrays a training run works with, split into train / validation / test."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

from datasets.errors import DataError


class SplitError(ValueError):
    """The requested validation split leaves no training examples."""


class Split(NamedTuple):
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32


class Dataset(NamedTuple):
    """Images as uint8 NHWC, labels as int32, plus what describes them."""

    train: Split
    validation: Split
    test: Split
    class_names: Sequence[str]
    name: str
    # Per-channel (mean, std) of [0, 1]-scaled training images to normalise
    # with, or None to feed [0, 1] pixels as they are.
    normalization: Optional[Tuple[np.ndarray, np.ndarray]] = None


def check_split(images: np.ndarray, labels: np.ndarray, num_classes: int, source: str) -> Split:
    """Validates one split and returns it as (N, H, W, C) uint8 and (N,) int32.

    Raises:
        DataError: naming ``source`` if counts, dtypes or label range are wrong.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images are {images.dtype}, expected uint8")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"{source}: images have shape {images.shape}, expected (N, H, W[, C])")
    if images.shape[0] == 0:
        raise DataError(f"{source}: holds no examples")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{source}: {images.shape[0]} images but labels of shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels are {labels.dtype}, expected integers")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{source}: labels range over [{labels.min()}, {labels.max()}], "
            f"expected [0, {num_classes - 1}]"
        )
    return Split(images, labels.astype(np.int32))


def hold_out_validation(train: Split, validation_size: int, seed: Optional[int] = 0):
    """Splits ``validation_size`` random examples off the training split.

    Returns:
        (train, validation) Splits; the same seed gives the same split.

    Raises:
        SplitError: if the split would leave no training examples.
    """
    n = train.images.shape[0]
    if not 0 <= validation_size < n:
        raise SplitError(
            f"validation_size must be in [0, {n - 1}] for {n} training examples. "
            f"Received: {validation_size}"
        )
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:validation_size], order[validation_size:]
    return (
        Split(train.images[train_idx], train.labels[train_idx]),
        Split(train.images[val_idx], train.labels[val_idx]),
    )


def channel_statistics(images: np.ndarray, source: str = "the training images"
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 (N, H, W, C) images scaled to [0, 1].

    Computed from each channel's histogram of the 256 byte values: exact, and
    without a float copy of the images (1.1 GB for CIFAR-10's training set).

    Raises:
        DataError: naming ``source`` and the channel, if a channel is constant:
            normalising it would divide by zero and every pixel would be NaN.
    """
    channels = images.reshape(-1, images.shape[-1])
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(channels.shape[1]):
        counts = np.bincount(channels[:, c], minlength=256).astype(np.float64)
        mean = counts @ levels / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum()))
        if not stds[-1] > 0:  # also catches an empty split (NaN)
            raise DataError(f"{source}: channel {c} of the training images is constant "
                            f"(every pixel {round(mean * 255)}), so it cannot be normalised "
                            "(std 0); these are not natural images")
    return np.asarray(means, np.float32), np.asarray(stds, np.float32)
