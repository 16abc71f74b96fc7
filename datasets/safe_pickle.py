"""Unpickling untrusted CIFAR-10 batches: plain data in, never code, never pointers.

Python's pickle runs whatever callable a file names, and numpy's own array
reconstruction trusts the dtype state a file gives it (a crafted state can
declare object fields, turning file bytes into pointers). So this reader
never hands anything from the file to numpy's pickle support:

1. ``scan`` walks the opcodes first (``pickletools.genops`` only parses) and
   refuses a pickle with more opcodes or memo slots than a CIFAR batch has,
   so a small file cannot build millions of objects or a huge memo table.
2. The Unpickler resolves the few globals a CIFAR batch names to stand-ins
   written here: ``numpy.dtype`` accepts only plain integer dtypes with their
   standard state, ``ndarray`` reconstruction only a C-ordered buffer of
   exactly ``prod(shape) * itemsize`` bytes, and ``_codecs.encode`` only
   latin-1 (how protocol-2 pickles spell bytes). Every other global is refused
   before anything is called.
3. The arrays are then built by ``np.frombuffer`` from a dtype chosen from
   this module's own table, never from the file.
4. Every stand-in that creates data counts its bytes against one budget per
   load, so memo references cannot replay one large value into gigabytes.
"""

from __future__ import annotations

import functools
import io
import math
import pickle
import pickletools
from typing import Any, Optional

import numpy as np

from datasets.errors import describe as _short

# An official batch pickle has ~40,000 opcodes (10,000 labels, 10,000 file
# names and their memo entries); five times that is still a few MB of objects.
MAX_OPCODES = 200_000
# Largest array a CIFAR pickle holds: one batch of 10,000 images of 3,072 bytes.
MAX_ARRAY_ELEMENTS = 10_000 * 3072
# What the stand-ins may create in one load, all together: an official batch
# makes its image bytes twice (the latin-1 text turned into bytes, then the
# array). Memo references let a small file call a stand-in thousands of times
# on one large value, so the bytes they produce are counted, not just opcodes.
MAX_PRODUCED_BYTES = 3 * MAX_ARRAY_ELEMENTS
# Plain integer dtypes an array may have, with the byte order numpy pickles.
_DTYPES = {
    "u1": "|", "i1": "|", "b1": "|",
    "u2": "<", "i2": "<", "u4": "<", "i4": "<", "u8": "<", "i8": "<",
}
_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global, or an array layout, outside the allow-list."""


def scan(data: bytes) -> None:
    """Refuses a pickle that would build more than a CIFAR batch ever needs.

    Raises:
        pickle.UnpicklingError: too many opcodes or memo slots, a frame
            larger than the file, or opcodes that do not parse.
    """
    count = 0
    try:
        for opcode, arg, _ in pickletools.genops(data):
            count += 1
            if count > MAX_OPCODES:
                raise pickle.UnpicklingError(
                    f"more than {MAX_OPCODES} pickle opcodes, far more than a CIFAR batch has")
            if opcode.name in _MEMO_OPCODES and not 0 <= int(arg) <= MAX_OPCODES:
                raise pickle.UnpicklingError(f"memo index {_short(arg)} out of range")
            if opcode.name == "FRAME" and arg > len(data):
                raise pickle.UnpicklingError(f"frame of {_short(arg)} bytes in a {len(data)}-byte file")
    except ValueError as e:  # genops' word for truncated or unknown opcodes
        raise pickle.UnpicklingError(f"malformed pickle ({_short(str(e), 120)})") from None


class _Budget:
    """The bytes the stand-ins of one load have created, refused past MAX_PRODUCED_BYTES."""

    def __init__(self):
        self.spent = 0

    def spend(self, count: int, what: str) -> None:
        self.spent += count
        if self.spent > MAX_PRODUCED_BYTES:
            raise UnsafePickleError(
                f"refusing {what}: the pickle's values would take more than "
                f"{MAX_PRODUCED_BYTES >> 20} MB, more than a CIFAR batch holds")


class _Ndarray:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _DType:
    """A dtype from the allow-list; ``BUILD`` may only give it its standard state."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True):
        if isinstance(spec, bytes):  # Python 2 pickles read with encoding="bytes"
            spec = spec.decode("latin-1")
        if not isinstance(spec, str) or spec not in _DTYPES:
            raise UnsafePickleError(
                f"refusing numpy dtype {_short(spec)}: only plain integer dtypes are allowed")
        if align not in (False, 0) or copy not in (True, 1):
            raise UnsafePickleError("refusing a numpy dtype with non-standard flags")
        self.code = spec

    def __setstate__(self, state: Any) -> None:
        order = _DTYPES[self.code]
        if not isinstance(state, tuple) or len(state) != 8:
            raise UnsafePickleError("refusing a numpy dtype state of non-standard form")
        byte_order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
        if state[0] not in (3, 4) or byte_order != order or state[2:] != (None, None, None, -1, -1, 0):
            raise UnsafePickleError(
                f"refusing a non-standard numpy dtype state (byte order {_short(byte_order)}): "
                f"only the standard state of a plain {self.code} dtype is allowed")


class _PendingArray:
    """What ``_reconstruct`` returns; ``BUILD`` fills it with checked data."""

    def __init__(self, budget: _Budget):
        self.array: Optional[np.ndarray] = None
        self.budget = budget

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise UnsafePickleError("refusing a numpy array state of non-standard form")
        if self.array is not None:
            raise UnsafePickleError("refusing a numpy array given its data twice")
        _, shape, dtype, fortran, raw = state
        self.array = _array_from(raw, dtype, shape, fortran, self.budget)


def _array_from(raw: Any, dtype: Any, shape: Any, fortran: Any, budget: _Budget) -> np.ndarray:
    if not isinstance(dtype, _DType):
        raise UnsafePickleError("refusing a numpy array whose dtype is not a plain integer dtype")
    if (not isinstance(shape, tuple) or not 0 <= len(shape) <= 2
            or not all(type(d) is int and 0 <= d <= MAX_ARRAY_ELEMENTS for d in shape)):
        raise UnsafePickleError(f"refusing a numpy array of shape {_short(shape)}")
    if fortran not in (False, 0):
        raise UnsafePickleError("refusing a Fortran-ordered numpy array")
    count = math.prod(shape)
    if count > MAX_ARRAY_ELEMENTS:
        raise UnsafePickleError(f"refusing a numpy array of {count} elements, more than a CIFAR batch")
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError(f"numpy array data is {_short(raw)}, expected bytes")
    dt = np.dtype(dtype.code)  # from this module's table, not from the file
    if len(raw) != count * dt.itemsize:
        raise UnsafePickleError(
            f"numpy array data has {len(raw)} bytes, expected {count * dt.itemsize} for shape {shape}")
    budget.spend(len(raw), "another numpy array")
    return np.frombuffer(bytes(raw), dtype=dt).reshape(shape)


def _reconstruct(subtype: Any, shape: Any, typecode: Any, budget: _Budget) -> _PendingArray:
    if subtype is not _Ndarray or shape != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickleError("refusing a numpy array reconstruction of non-standard form")
    return _PendingArray(budget)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, budget: _Budget) -> np.ndarray:
    """numpy's protocol-5 array form (in-band buffer)."""
    if order not in ("C", b"C"):
        raise UnsafePickleError("refusing a numpy array that is not C-ordered")
    return _array_from(buf, dtype, shape, False, budget)


def _encode(text: Any, encoding: Any = "latin1", *, budget: _Budget) -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode other than latin-1 text to bytes")
    budget.spend(len(text), "another text-to-bytes conversion")
    return text.encode("latin-1")


_GLOBALS = {}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _GLOBALS[(_module, "_reconstruct")] = _reconstruct
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _GLOBALS[(_module, "_frombuffer")] = _frombuffer
_GLOBALS[("numpy", "ndarray")] = _Ndarray
_GLOBALS[("numpy", "dtype")] = _DType
_GLOBALS[("_codecs", "encode")] = _encode


# The stand-ins that create data, and so spend from the load's budget.
_SPENDING = (_reconstruct, _frombuffer, _encode)


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = _Budget()

    def find_class(self, module: str, name: str) -> Any:
        stand_in = _GLOBALS.get((module, name))
        if stand_in is None:
            raise UnsafePickleError(
                f"refusing to load {module[:60]}.{name[:60]}: only "
                "plain containers, bytes, str, numbers and numpy integer arrays are allowed")
        if stand_in in _SPENDING:
            return functools.partial(stand_in, budget=self.budget)
        return stand_in

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent reference")


def safe_loads(data: bytes) -> Any:
    """Unpickles ``data`` (bytes-keyed, as written by Python 2 too).

    A top-level dict's array values come back as numpy arrays; arrays
    anywhere else stay opaque stand-ins that no CIFAR check accepts.

    Raises:
        UnsafePickleError: a non-allowed global, dtype or array layout.
        pickle.UnpicklingError, EOFError, ValueError, ...: corrupt data
            (callers treat any exception as a corrupt file).
    """
    scan(data)
    value = _AllowListUnpickler(io.BytesIO(data), encoding="bytes").load()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, _PendingArray):
                if item.array is None:
                    raise UnsafePickleError("numpy array without its data")
                value[key] = item.array
    return value

