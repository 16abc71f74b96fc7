"""MNIST: from --data_dir, else the Keras cache, else a download through Keras."""

from __future__ import annotations

import math
import os
from typing import Optional


from datasets.errors import DataError
from datasets.idx import read_idx
from datasets.location import data_dir_kind, download, keras_cache
from datasets.npz import ArraySpec, read_npz
from datasets.splits import Dataset, check_split, hold_out_validation

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_NAME = "mnist.npz"
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CLASS_NAMES = tuple(str(d) for d in range(10))
IMAGE_SHAPE = (28, 28)
# MNIST has 70,000 images; no file of it may claim more.
MAX_EXAMPLES = 70_000
# Keras' mnist.npz is 11 MB (55 MB stored uncompressed).
MAX_NPZ_BYTES = 128 << 20
NPZ_SPECS = {
    "x_train": ArraySpec("u", IMAGE_SHAPE, MAX_EXAMPLES),
    "y_train": ArraySpec("ui", (), MAX_EXAMPLES),
    "x_test": ArraySpec("u", IMAGE_SHAPE, MAX_EXAMPLES),
    "y_test": ArraySpec("ui", (), MAX_EXAMPLES),
}

HOW_TO_FIX = (
    "Put the four official MNIST files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz; gzipped or not) or a Keras mnist.npz in a folder "
    "and pass --data_dir=FOLDER, or put mnist.npz in ~/.keras/datasets/."
)


def _find_idx(data_dir: str, stem: str) -> Optional[str]:
    for candidate in (stem + ".gz", stem):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def _load_idx_dir(data_dir: str):
    paths = {key: _find_idx(data_dir, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] + "[.gz]" for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"{data_dir}: missing MNIST files {', '.join(missing)}. {HOW_TO_FIX}")
    arrays = {}
    for key, path in paths.items():
        inner = IMAGE_SHAPE if key.startswith("x") else ()
        arrays[key] = read_idx(path, (None, *inner), max_bytes=MAX_EXAMPLES * math.prod(inner))
    return arrays, paths


def _load_npz(path: str):
    arrays = read_npz(path, NPZ_SPECS, MAX_NPZ_BYTES)
    return arrays, {k: path for k in IDX_FILES}


def load_raw_mnist(data_dir: Optional[str] = None):
    """The four MNIST arrays as a dict, and the file each came from.

    Looks in ``data_dir`` (IDX files or mnist.npz) when given; otherwise in the
    Keras cache, then downloads through Keras. Every file is bounded by what
    MNIST can hold (70,000 images of 28×28) before it is read.

    Raises:
        DataError: if ``data_dir`` is missing, holds no MNIST, or a file is bad.
    """
    if data_dir:
        if data_dir_kind(data_dir, HOW_TO_FIX) == "file":
            if data_dir.endswith(".npz"):
                return _load_npz(data_dir)
            raise DataError(f"--data_dir {data_dir} is a file, expected a folder or an .npz. {HOW_TO_FIX}")
        npz = os.path.join(data_dir, NPZ_NAME)
        if os.path.isfile(npz) and _find_idx(data_dir, IDX_FILES["x_train"]) is None:
            return _load_npz(npz)
        return _load_idx_dir(data_dir)
    cached = keras_cache(NPZ_NAME)
    if os.path.isfile(cached):
        return _load_npz(cached)
    return _load_npz(download("MNIST", NPZ_NAME, ORIGIN, HOW_TO_FIX, file_hash=SHA256))


def load_mnist(data_dir: Optional[str] = None, validation_size: int = 5000,
               seed: Optional[int] = 0) -> Dataset:
    """MNIST as a ``Dataset``: 28×28×1 uint8 images, a validation split held out.

    Raises:
        DataError: see ``load_raw_mnist``; also when counts or labels are wrong.
        ValueError: if ``validation_size`` leaves no training examples.
    """
    arrays, paths = load_raw_mnist(data_dir)
    train = check_split(arrays["x_train"], arrays["y_train"], 10, paths["y_train"])
    test = check_split(arrays["x_test"], arrays["y_test"], 10, paths["y_test"])
    train, validation = hold_out_validation(train, validation_size, seed)
    return Dataset(train, validation, test, CLASS_NAMES, "mnist")
