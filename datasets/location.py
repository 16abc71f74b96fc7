"""Where a data set is found: --data_dir, else the Keras cache, else a download."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from datasets.errors import DataError, describe

# None: Keras's own cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``,
# looked up when needed (the apps may point KERAS_HOME elsewhere first).
KERAS_CACHE = None


def data_dir_kind(data_dir: str, how_to_fix: str) -> str:
    """``"file"`` or ``"folder"`` for an existing --data_dir.

    Raises:
        DataError: if it does not exist, is a broken symlink or a symlink
            loop, cannot be read, or is neither a file nor a folder (a FIFO
            would block a reader forever).
    """
    try:
        mode = os.stat(data_dir).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"--data_dir {data_dir} is a symlink loop. {how_to_fix}") from None
        if os.path.islink(data_dir):
            raise DataError(f"--data_dir {data_dir} is a symlink to a missing target. {how_to_fix}") from None
        if e.errno == errno.ENOENT:
            raise DataError(f"--data_dir {data_dir} does not exist. {how_to_fix}") from None
        raise DataError(f"--data_dir {data_dir}: {e.strerror}. {how_to_fix}") from None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    raise DataError(f"--data_dir {data_dir} is neither a folder nor a regular file. {how_to_fix}")


def keras_cache(name: str) -> str:
    """The path ``name`` would have in Keras' download cache."""
    cache = KERAS_CACHE or os.path.join(
        os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"), "datasets")
    return os.path.join(cache, name)


def download(what: str, fname: str, origin: str, how_to_fix: str, **get_file_args: Any) -> str:
    """Downloads through ``keras.utils.get_file``; returns the local path.

    Raises:
        DataError: on any failure (no network, bad hash), saying what to put where.
    """
    import keras  # deferred: only the download path needs it

    try:
        return keras.utils.get_file(fname, origin=origin, **get_file_args)
    except Exception as e:  # noqa: BLE001 - any network or hash failure ends in one clear message
        raise DataError(f"{what} was not found locally and the download failed "
                        f"({describe(str(e), 200)}). {how_to_fix}") from None
