"""CIFAR-10 from the official python layout, read without trusting its pickles.

Looks in ``--data_dir`` (the ``cifar-10-batches-py/`` folder, a folder that
holds it, or ``cifar-10-python.tar.gz``), else the Keras cache, else
downloads through Keras.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zlib
from typing import Callable, Dict, Optional

import numpy as np

from datasets.bounded_gzip import open_bounded
from datasets.errors import DataError, describe
from datasets.location import data_dir_kind, download, keras_cache
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
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# SHA-256 of the official archive (the hash Keras's own cifar10 loader checks).
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"

HOW_TO_FIX = (
    f"Pass --data_dir pointing at the official {FOLDER}/ folder (data_batch_1..5, "
    f"test_batch, batches.meta) or at {ARCHIVE}, or put {FOLDER}/ in ~/.keras/datasets/."
)

Reader = Callable[[str], bytes]
# The official archive inflates to ~178 MB; reading stops past this, so a
# small .tar.gz cannot inflate to gigabytes (a "zip bomb") before it is refused.
MAX_ARCHIVE_BYTES = 256 << 20
# The official archive has 8 members.
MAX_ARCHIVE_MEMBERS = 64
NEEDED = (META, *TRAIN_BATCHES, TEST_BATCH)
MAX_CLASS_NAME_CHARS = 64


def _folder_reader(folder: str) -> Reader:
    def read(name: str) -> bytes:
        path = os.path.join(folder, name)
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"{path}: not a regular file. {HOW_TO_FIX}")
            if info.st_size > MAX_MEMBER_BYTES:
                raise DataError(f"{path}: {info.st_size} bytes, too large for a CIFAR batch")
            with open(path, "rb") as f:
                return f.read(MAX_MEMBER_BYTES + 1)[:MAX_MEMBER_BYTES]
        except FileNotFoundError:
            raise DataError(f"{path}: file not found. {HOW_TO_FIX}") from None
        except OSError as e:
            raise DataError(f"{path}: unreadable ({e.strerror or e})") from None
    return read


class _BoundedStream(io.RawIOBase):
    """A read-only stream that raises DataError once more than ``limit`` bytes were read."""

    def __init__(self, inner, limit: int, source: str):
        self.inner, self.limit, self.source, self.position = inner, limit, source, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.limit - self.position + 1:
            size = self.limit - self.position + 1
        chunk = self.inner.read(size)
        self.position += len(chunk)
        if self.position > self.limit:
            raise DataError(f"{self.source}: inflates to more than {self.limit >> 20} MB, "
                            "far more than CIFAR-10; refusing to read on")
        return chunk


def _archive_reader(path: str) -> Reader:
    """Reads the needed members in one bounded pass over the (gzipped) tar stream."""
    members: Dict[str, bytes] = {}
    try:
        with open_bounded(path, MAX_ARCHIVE_BYTES) as inner:
            stream = _BoundedStream(inner, MAX_ARCHIVE_BYTES, path)
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for count, member in enumerate(archive, start=1):
                    if count > MAX_ARCHIVE_MEMBERS:
                        raise DataError(f"{path}: more than {MAX_ARCHIVE_MEMBERS} members, "
                                        "not the CIFAR-10 archive")
                    folder, _, name = member.name.partition("/")
                    if folder != FOLDER or name not in NEEDED or not member.isfile():
                        continue
                    if member.size > MAX_MEMBER_BYTES:
                        raise DataError(f"{path}:{FOLDER}/{name}: {member.size} bytes, too "
                                        "large for a CIFAR batch")
                    members[name] = archive.extractfile(member).read(member.size)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar.gz archive ({describe(str(e), 120)})") from None

    def read(name: str) -> bytes:
        if name not in members:
            raise DataError(f"{path}: has no regular file {FOLDER}/{name}")
        return members[name]
    return read


def _unpickle(read: Reader, name: str, source: str) -> Dict:
    raw = read(name)
    try:
        value = safe_loads(raw)
    except UnsafePickleError as e:
        raise DataError(f"{source}/{name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any failure of a hostile pickle is "corrupt"
        raise DataError(f"{source}/{name}: truncated or corrupt pickle "
                        f"({type(e).__name__}: {describe(str(e), 120)})") from None
    if not isinstance(value, dict):
        raise DataError(f"{source}/{name}: expected a dict, found {describe(value)}")
    return value


def _check_labels(labels, per_batch: int, where: str) -> np.ndarray:
    """Labels as an int64 (per_batch,) array; a list is walked only up to per_batch items."""
    if isinstance(labels, np.ndarray):
        if labels.shape != (per_batch,) or labels.dtype.kind not in "iu":
            raise DataError(f"{where}: labels have shape {labels.shape} and dtype {labels.dtype}, "
                            f"expected {per_batch} integers")
        array = labels.astype(np.int64)
    elif isinstance(labels, list):
        if len(labels) != per_batch:
            raise DataError(f"{where}: {len(labels)} labels, expected {per_batch}")
        if not all(type(label) is int for label in labels):
            raise DataError(f"{where}: labels must be integers in [0, 9]")
        array = np.array([max(min(label, 1 << 32), -1) for label in labels], dtype=np.int64)
    else:
        raise DataError(f"{where}: labels are {describe(labels)}, expected a list of {per_batch} integers")
    if array.size and (array.min() < 0 or array.max() > 9):
        raise DataError(f"{where}: labels must be integers in [0, 9]")
    return array


def _read_batch(read: Reader, name: str, source: str, per_batch: int):
    batch = _unpickle(read, name, source)
    where = f"{source}/{name}"
    data = batch.get(b"data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (per_batch, PIXELS):
        found = (f"shape {data.shape} and dtype {data.dtype}" if isinstance(data, np.ndarray)
                 else describe(data))
        raise DataError(f"{where}: data has {found}, expected uint8 ({per_batch}, {PIXELS})")
    labels = _check_labels(batch.get(b"labels"), per_batch, where)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> NHWC
    return images, labels


def _read_meta(read: Reader, source: str):
    """Class names and images per batch from batches.meta, both checked."""
    meta = _unpickle(read, META, source)
    where = f"{source}/{META}"
    per_batch = meta.get(b"num_cases_per_batch")
    if type(per_batch) is not int or not 0 < per_batch <= IMAGES_PER_BATCH:
        raise DataError(f"{where}: num_cases_per_batch={describe(per_batch)}, expected an "
                        f"integer in [1, {IMAGES_PER_BATCH}]")
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != len(CLASS_NAMES) or not all(
        isinstance(n, (bytes, str)) and len(n) <= MAX_CLASS_NAME_CHARS for n in names
    ):
        raise DataError(f"{where}: label_names must list the 10 class names")
    try:
        names = tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    except UnicodeDecodeError:
        raise DataError(f"{where}: class names are not UTF-8 text") from None
    if names != CLASS_NAMES:
        raise DataError(f"{where}: class names {', '.join(describe(n, 20) for n in names)} "
                        "differ from CIFAR-10's")
    return names, per_batch


def _folder_with_batches(folder: str) -> Optional[Reader]:
    """A reader if ``folder`` holds the batch files; DataError if batches.meta alone is missing."""
    if os.path.isfile(os.path.join(folder, META)):
        return _folder_reader(folder)
    if any(os.path.exists(os.path.join(folder, name)) for name in (*TRAIN_BATCHES, TEST_BATCH)):
        raise DataError(f"{folder}: holds CIFAR batch files but no {META}. {HOW_TO_FIX}")
    return None


def _locate(data_dir: Optional[str]):
    """A (reader, source description) for the first place that holds CIFAR-10."""
    if data_dir:
        if data_dir_kind(data_dir, HOW_TO_FIX) == "file":
            if data_dir.endswith((".tar.gz", ".tgz", ".tar")):
                return _archive_reader(data_dir), data_dir
            raise DataError(f"--data_dir {data_dir} is a file but not a .tar.gz archive. {HOW_TO_FIX}")
        for folder in (data_dir, os.path.join(data_dir, FOLDER)):
            reader = _folder_with_batches(folder)
            if reader:
                return reader, folder
        archive = os.path.join(data_dir, ARCHIVE)
        if os.path.isfile(archive):
            return _archive_reader(archive), archive
        raise DataError(f"--data_dir {data_dir} holds neither {FOLDER}/ nor {ARCHIVE}. {HOW_TO_FIX}")
    cached = keras_cache(FOLDER)
    if os.path.isfile(os.path.join(cached, META)):
        return _folder_reader(cached), cached
    # The archive itself, checked against its hash, read by the same bounded
    # reader as a local one (nothing is extracted to disk).
    archive = download("CIFAR-10", ARCHIVE, ORIGIN, HOW_TO_FIX, file_hash=SHA256)
    return _archive_reader(archive), archive


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
                   normalization=channel_statistics(train.images, source))
