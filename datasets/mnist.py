"""MNIST: from --data_dir, else the Keras cache, else a download through Keras."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from datasets.errors import DataError
from datasets.idx import read_idx
from datasets.splits import Dataset, check_split, hold_out_validation

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_NAME = "mnist.npz"
KERAS_CACHE = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
CLASS_NAMES = tuple(str(d) for d in range(10))
IMAGE_SHAPE = (28, 28)

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
        shape = (None, *IMAGE_SHAPE) if key.startswith("x") else (None,)
        arrays[key] = read_idx(path, shape)
    return arrays, paths


def _load_npz(path: str):
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in IDX_FILES if k not in data.files]
            if missing:
                raise DataError(f"{path}: not a Keras MNIST archive (no {', '.join(missing)})")
            arrays = {k: data[k] for k in IDX_FILES}
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: unreadable or corrupt npz ({e})") from None
    for key in ("x_train", "x_test"):
        if arrays[key].shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{path}: {key} has shape {arrays[key].shape}, expected (N, 28, 28)")
    return arrays, {k: path for k in IDX_FILES}


def _download():
    import keras  # deferred: only the download path needs it

    try:
        path = keras.utils.get_file(
            NPZ_NAME,
            origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
            file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
        )
    except Exception as e:  # any network or hash failure ends in one clear message
        raise DataError(f"MNIST was not found locally and the download failed ({e}). {HOW_TO_FIX}") from None
    return _load_npz(path)


def load_raw_mnist(data_dir: Optional[str] = None):
    """The four MNIST arrays as a dict, and the file each came from.

    Looks in ``data_dir`` (IDX files or mnist.npz) when given; otherwise in the
    Keras cache, then downloads through Keras.

    Raises:
        DataError: if ``data_dir`` is missing, holds no MNIST, or a file is bad.
    """
    if data_dir:
        if not os.path.exists(data_dir):
            raise DataError(f"--data_dir {data_dir} does not exist. {HOW_TO_FIX}")
        if os.path.isfile(data_dir):
            if data_dir.endswith(".npz"):
                return _load_npz(data_dir)
            raise DataError(f"--data_dir {data_dir} is a file, expected a folder or an .npz. {HOW_TO_FIX}")
        npz = os.path.join(data_dir, NPZ_NAME)
        if os.path.isfile(npz) and _find_idx(data_dir, IDX_FILES["x_train"]) is None:
            return _load_npz(npz)
        return _load_idx_dir(data_dir)
    cached = os.path.join(KERAS_CACHE, NPZ_NAME)
    if os.path.isfile(cached):
        return _load_npz(cached)
    return _download()


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
