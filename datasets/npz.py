"""Reading arrays from an untrusted ``.npz`` with every size checked first.

``np.load`` allocates whatever an npy header claims (a 4.6 MB npz can claim
gigabytes of zeros) and checks the dtype only when asked. Here each member's
header is parsed on its own, its dtype and element count are checked against
what the caller allows, and only then are exactly that many bytes read.
"""

from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from typing import Dict, Mapping, NamedTuple, Tuple

import numpy as np

from datasets.errors import DataError, describe

# numpy's own default bound on a header's text (what ast.literal_eval parses).
MAX_HEADER_BYTES = 10_000
# Keras's mnist.npz has 4 members; zipfile reads the whole central directory
# into memory (1.2 M entries: 600 MB), so its size is checked first.
MAX_MEMBERS = 16
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_EOCD_SIZE, _MAX_COMMENT = 22, 0xFFFF


class ArraySpec(NamedTuple):
    """What an npz member may hold: dtype kinds ("u", "i"), shape after the first axis, a size bound."""

    kinds: str
    inner_shape: Tuple[int, ...]
    max_rows: int


def _read_member(archive: zipfile.ZipFile, member: str, spec: ArraySpec, where: str) -> np.ndarray:
    with archive.open(member) as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError as e:
            raise DataError(f"{where}: not an npy array ({describe(str(e), 80)})") from None
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise DataError(f"{where}: npy format version {version} is not supported")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        try:
            shape, fortran, dtype = read_header(f, max_header_size=MAX_HEADER_BYTES)
        except (ValueError, TypeError, SyntaxError, tokenize.TokenError) as e:
            # numpy parses the header with the Python tokenizer and ast.literal_eval.
            raise DataError(f"{where}: corrupt npy header ({type(e).__name__})") from None
        if dtype.hasobject or dtype.kind not in spec.kinds or dtype.fields is not None or dtype.itemsize > 8:
            raise DataError(f"{where}: dtype {str(dtype)[:40]}, expected plain integers")
        if fortran or len(shape) != 1 + len(spec.inner_shape) or tuple(shape[1:]) != spec.inner_shape:
            expected = "(N" + "".join(f", {d}" for d in spec.inner_shape) + ")"
            raise DataError(f"{where}: shape {str(shape)[:60]}{' in Fortran order' if fortran else ''}, "
                            f"expected {expected}")
        if not 0 <= shape[0] <= spec.max_rows:
            raise DataError(f"{where}: {shape[0]} rows, more than the {spec.max_rows} this data set holds")
        size = math.prod(shape) * dtype.itemsize
        data = f.read(size + 1)
    if len(data) != size:
        raise DataError(f"{where}: {len(data)} data bytes, its header says {size}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _check_central_directory(path: str) -> None:
    """Refuses a zip whose end record claims more members than an npz of this data
    set has, or a ZIP64 one, before zipfile reads its central directory."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = max(0, size - _EOCD_SIZE - _MAX_COMMENT)
        f.seek(start)
        tail = f.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        raise DataError(f"{path}: unreadable or corrupt npz (no end-of-central-directory record)")
    entries, directory_bytes = struct.unpack("<HI", tail[at + 10:at + 16])
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF or tail[max(at - 20, 0):at - 16] == _ZIP64_LOCATOR:
        raise DataError(f"{path}: a ZIP64 archive, which an npz of this data set never is")
    if entries > MAX_MEMBERS:
        raise DataError(f"{path}: {entries} members, more than the {MAX_MEMBERS} an npz of this "
                        "data set has")


def read_npz(path: str, specs: Mapping[str, ArraySpec], max_file_bytes: int) -> Dict[str, np.ndarray]:
    """The named arrays of an npz, each checked against its spec before it is read.

    Raises:
        DataError: naming ``path`` and the member, if the file is too large,
            not a zip, lacks a member, or a member's dtype, shape, size or data
            length is not what its spec allows.
    """
    try:
        if os.path.getsize(path) > max_file_bytes:
            raise DataError(f"{path}: {os.path.getsize(path)} bytes, too large for this data set")
        _check_central_directory(path)
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [k for k in specs if k + ".npy" not in names]
            if missing:
                raise DataError(f"{path}: not a Keras MNIST archive (no {', '.join(missing)})")
            return {key: _read_member(archive, key + ".npy", spec, f"{path}:{key}")
                    for key, spec in specs.items()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error,
            ValueError, NotImplementedError) as e:
        raise DataError(f"{path}: unreadable or corrupt npz ({type(e).__name__}: "
                        f"{describe(str(e), 120)})") from None
