"""Reading the small state files a run folder holds (metrics, checkpoint state,
flag files) as untrusted input: regular files only, never a blocking read,
never more than a bound."""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional, Type


class StateFileError(Exception):
    """A state file that cannot be ours: the message names it and says why."""


def read_state_file(path: str, max_bytes: int, follow_symlinks: bool = False) -> Optional[bytes]:
    """The bytes of ``path``, or None if it does not exist.

    Opened non-blocking and, unless ``follow_symlinks``, without following a
    symlink; a FIFO, device or folder is refused before anything is read (a
    FIFO would block forever, ``/dev/zero`` never ends), and so is a file
    larger than ``max_bytes``.

    Raises:
        StateFileError: a symlink, not a regular file, too large, or unreadable.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateFileError(f"{path} is a symlink, not a file this project wrote") from None
        raise StateFileError(f"{path} cannot be read ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateFileError(f"{path} is not a regular file (a FIFO, device or folder)")
        if info.st_size > max_bytes:
            raise StateFileError(f"{path} is larger than {_size(max_bytes)}; not a file this "
                                 "project wrote")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise StateFileError(f"{path} is larger than {_size(max_bytes)}; not a file this "
                                 "project wrote")
        return b"".join(chunks)
    except OSError as e:
        raise StateFileError(f"{path} cannot be read ({e.strerror or e})") from None
    finally:
        os.close(fd)


def _size(count: int) -> str:
    return f"{count >> 20} MB" if count >= 1 << 20 else f"{count >> 10} KB"


def read_run_state(path: str, max_bytes: int, error: Type[Exception], how_to_fix: str
                   ) -> Optional[bytes]:
    """``read_state_file``, its refusal raised as ``error`` with ``how_to_fix`` appended."""
    try:
        return read_state_file(path, max_bytes)
    except StateFileError as e:
        raise error(f"{e}; {how_to_fix}") from None
