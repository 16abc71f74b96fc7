"""CIFAR-10 from the official python layout, read without trusting its pickles.

Looks in ``--data_dir`` (the ``cifar-10-batches-py/`` folder, a folder that
holds it, or ``cifar-10-python.tar.gz``), else the Keras cache, else
downloads through Keras.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from typing import Callable, Dict, Optional

import numpy as np

from datasets.errors import DataError
from datasets.safe_pickle import UnsafePickleError, safe_loads
from datasets.splits import Dataset, channel_statistics, check_split, hold_out_validation

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck")
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
IMAGES_PER_BATCH = 10000
PIXELS = 32 * 32 * 3
# A batch pickle is ~31 MB; anything far larger is not CIFAR and is not read.
MAX_MEMBER_BYTES = 64 << 20
KERAS_CACHE = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

HOW_TO_FIX = (
    f"Pass --data_dir pointing at the official {FOLDER}/ folder (data_batch_1..5, "
    f"test_batch, batches.meta) or at {ARCHIVE}, or put {FOLDER}/ in ~/.keras/datasets/."
)

Reader = Callable[[str], bytes]


def _folder_reader(folder: str) -> Reader:
    def read(name: str) -> bytes:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise DataError(f"{path}: file not found. {HOW_TO_FIX}")
        if os.path.getsize(path) > MAX_MEMBER_BYTES:
            raise DataError(f"{path}: {os.path.getsize(path)} bytes, too large for a CIFAR batch")
        with open(path, "rb") as f:
            return f.read()
    return read


def _archive_reader(path: str) -> Reader:
    try:
        archive = tarfile.open(path, "r:*")
        members = {m.name: m for m in archive.getmembers()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable tar.gz archive ({e})") from None

    def read(name: str) -> bytes:
        member = members.get(f"{FOLDER}/{name}")
        if member is None or not member.isfile():
            raise DataError(f"{path}: has no regular file {FOLDER}/{name}")
        if member.size > MAX_MEMBER_BYTES:
            raise DataError(f"{path}:{FOLDER}/{name}: {member.size} bytes, too large for a CIFAR batch")
        try:
            return archive.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{path}:{FOLDER}/{name}: truncated or corrupt ({e})") from None
    return read


def _unpickle(read: Reader, name: str, source: str) -> Dict:
    raw = read(name)
    try:
        value = safe_loads(raw)
    except UnsafePickleError as e:
        raise DataError(f"{source}/{name}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError) as e:
        raise DataError(f"{source}/{name}: truncated or corrupt pickle ({type(e).__name__}: {e})") from None
    if not isinstance(value, dict):
        raise DataError(f"{source}/{name}: expected a dict, found {type(value).__name__}")
    return value


def _read_batch(read: Reader, name: str, source: str, per_batch: int):
    batch = _unpickle(read, name, source)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (per_batch, PIXELS):
        shape = getattr(data, "shape", None)
        raise DataError(f"{source}/{name}: data has shape {shape} and dtype "
                        f"{getattr(data, 'dtype', type(data).__name__)}, expected uint8 "
                        f"({per_batch}, {PIXELS})")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != per_batch:
        raise DataError(f"{source}/{name}: expected {per_batch} labels")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{source}/{name}: labels must be integers in [0, 9]")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> NHWC
    return images, labels


def _read_meta(read: Reader, source: str):
    """Class names and images per batch from batches.meta, both checked."""
    meta = _unpickle(read, META, source)
    per_batch = meta.get(b"num_cases_per_batch")
    if not isinstance(per_batch, int) or not 0 < per_batch <= IMAGES_PER_BATCH:
        raise DataError(f"{source}/{META}: num_cases_per_batch={per_batch!r}, expected an "
                        f"integer in [1, {IMAGES_PER_BATCH}]")
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != len(CLASS_NAMES) or not all(
        isinstance(n, (bytes, str)) for n in names
    ):
        raise DataError(f"{source}/{META}: label_names must list the 10 class names")
    names = tuple(n.decode() if isinstance(n, bytes) else n for n in names)
    if names != CLASS_NAMES:
        raise DataError(f"{source}/{META}: class names {names} differ from CIFAR-10's")
    return names, per_batch


def _locate(data_dir: Optional[str]):
    """A (reader, source description) for the first place that holds CIFAR-10."""
    if data_dir:
        if not os.path.exists(data_dir):
            raise DataError(f"--data_dir {data_dir} does not exist. {HOW_TO_FIX}")
        if os.path.isfile(data_dir):
            if data_dir.endswith((".tar.gz", ".tgz", ".tar")):
                return _archive_reader(data_dir), data_dir
            raise DataError(f"--data_dir {data_dir} is a file but not a .tar.gz archive. {HOW_TO_FIX}")
        for folder in (data_dir, os.path.join(data_dir, FOLDER)):
            if os.path.isfile(os.path.join(folder, META)):
                return _folder_reader(folder), folder
        archive = os.path.join(data_dir, ARCHIVE)
        if os.path.isfile(archive):
            return _archive_reader(archive), archive
        raise DataError(f"--data_dir {data_dir} holds neither {FOLDER}/ nor {ARCHIVE}. {HOW_TO_FIX}")
    cached = os.path.join(KERAS_CACHE, FOLDER)
    if os.path.isfile(os.path.join(cached, META)):
        return _folder_reader(cached), cached
    return _download()


def _download():
    import keras  # deferred: only the download path needs it

    try:
        path = keras.utils.get_file(FOLDER, origin=ORIGIN, extract=True)
    except Exception as e:  # any network failure ends in one clear message
        raise DataError(f"CIFAR-10 was not found locally and the download failed ({e}). {HOW_TO_FIX}") from None
    for folder in (path, os.path.join(path, FOLDER)):
        if os.path.isfile(os.path.join(folder, META)):
            return _folder_reader(folder), folder
    raise DataError(f"the CIFAR-10 download in {path} has no {META}. {HOW_TO_FIX}")


def load_cifar10(data_dir: Optional[str] = None, validation_size: int = 5000,
                 seed: Optional[int] = 0) -> Dataset:
    """CIFAR-10 as a ``Dataset`` of 32×32×3 uint8 images, validation held out.

    Every batch must hold ``num_cases_per_batch`` images (10,000 in the
    official files) as a (N, 3072) uint8 array of channel-major rows.

    Raises:
        DataError: naming the file, if anything is missing, corrupt, of the
            wrong shape, or a pickle tries to load anything but data.
    """
    read, source = _locate(data_dir)
    class_names, per_batch = _read_meta(read, source)
    parts = [_read_batch(read, name, source, per_batch) for name in TRAIN_BATCHES]
    train = check_split(np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), 10, source)
    test = check_split(*_read_batch(read, TEST_BATCH, source, per_batch), 10,
                       f"{source}/{TEST_BATCH}")
    train, validation = hold_out_validation(train, validation_size, seed)
    return Dataset(train, validation, test, class_names, "cifar10",
                   normalization=channel_statistics(train.images))
