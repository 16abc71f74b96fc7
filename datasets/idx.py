"""Reader for the IDX format of the MNIST files, validating everything it reads.

An IDX file is a big-endian header, ``0x00 0x00 <type> <ndim>``, then one
uint32 per dimension, then the data. MNIST uses type 0x08 (unsigned byte).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import Optional, Sequence

import numpy as np

from datasets.bounded_gzip import open_bounded
from datasets.errors import DataError, describe

UBYTE_TYPE = 0x08
# The default bound on the data a header may claim; callers pass a tighter
# one (what the data set can hold), checked before anything is allocated or
# a gzip stream is inflated past it.
MAX_DATA_BYTES = 1 << 30


# The header (magic and up to 4 dimensions) and one byte past the data, which
# read_idx reads to tell "more data than the header says".
_HEADER_AND_EXTRA = 4 + 4 * 4 + 1


def read_idx(path: str, expected_shape: Optional[Sequence[Optional[int]]] = None,
             max_bytes: int = MAX_DATA_BYTES) -> np.ndarray:
    """Reads an IDX file of unsigned bytes, gzipped or not.

    Args:
        path: the file.
        expected_shape: dimensions to check; None entries match anything.
        max_bytes: the most data the header may claim; a larger claim is
            refused before reading (so a small gzip cannot inflate to more).

    Returns:
        A uint8 array with the file's dimensions.

    Raises:
        DataError: naming ``path``, if the file is missing, not IDX, not
            unsigned bytes, truncated, longer than its header says, or of
            another shape than expected.
    """
    name = os.path.basename(path)
    try:
        with open_bounded(path, max_bytes + _HEADER_AND_EXTRA) as f:
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00":
                raise DataError(f"{path}: not an IDX file (bad magic number {header.hex()!r})")
            if header[2] != UBYTE_TYPE:
                raise DataError(
                    f"{path}: IDX data type 0x{header[2]:02x}, expected 0x08 (unsigned byte)"
                )
            ndim = header[3]
            if not 1 <= ndim <= 4:
                raise DataError(f"{path}: IDX header claims {ndim} dimensions")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            size = math.prod(dims)  # Python ints: a hostile header cannot overflow
            if size > max_bytes:
                raise DataError(f"{path}: IDX header claims {size} bytes of data "
                                f"(shape {dims}), more than the {max_bytes} this data set can hold")
            if expected_shape is not None and (
                len(expected_shape) != len(dims)
                or any(e is not None and e != d for e, d in zip(expected_shape, dims))
            ):
                raise DataError(f"{path}: shape {dims}, expected {tuple(expected_shape)}")
            data = f.read(size + 1)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: unreadable or corrupt ({describe(str(e), 120)})") from None
    if len(data) < size:
        raise DataError(f"{name} is truncated: {len(data)} of {size} data bytes ({path})")
    if len(data) > size:
        raise DataError(f"{path}: more data than its IDX header says {dims}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def write_idx(path: str, array: np.ndarray, compress: bool = True) -> None:
    """Writes a uint8 array as IDX (used by tests to make tiny MNIST files)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">BBBB", 0, 0, UBYTE_TYPE, array.ndim)
    payload += struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)
