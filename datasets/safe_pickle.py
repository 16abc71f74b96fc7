"""Unpickling untrusted files with an allow-list: data in, never code.

Python's pickle runs whatever callable a file names. CIFAR-10's batches are
pickles, so they are read with an Unpickler that resolves only the globals a
CIFAR batch needs (numpy array reconstruction and the bytes codec) and
refuses every other one before anything is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: only plain containers, bytes, str, "
                "numbers and numpy arrays are allowed"
            )
        return super().find_class(module, name)


def safe_loads(data: bytes) -> Any:
    """Unpickles ``data`` (bytes-keyed, as written by Python 2 too).

    Raises:
        UnsafePickleError: if the pickle names any non-allowed global.
        pickle.UnpicklingError, EOFError, ValueError: if it is corrupt.
    """
    return _AllowListUnpickler(io.BytesIO(data), encoding="bytes").load()
