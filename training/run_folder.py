"""The run folder (--model_dir): ours alone while we run, written without following links.

A run takes an exclusive ``fcntl`` lock on ``<model_dir>/.lock``, so a
second run on the same folder stops at once instead of overwriting the
first one's checkpoints. Files are written to a temporary name in the same
folder and renamed over the target: a pre-existing symlink at the target is
replaced, never written through. The subfolders TensorFlow writes into
(checkpoints, TensorBoard logs) are refused if they are symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Iterator, List

from training.errors import RunFolderError

LOCK_NAME = ".lock"
# Folders TensorFlow writes into by name; they must be real folders.
SUBFOLDERS = ("checkpoints", "train", "validation", "test", "workers", "savedmodel")
# metrics.json of a 10^6-step run is a few MB; anything far larger is not ours.
MAX_METRICS_BYTES = 64 << 20


def _file_mode() -> int:
    """What open() would give a new file: 0o666 less the umask (mkstemp uses 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


class RunFolder:
    """One run's output folder; use ``with RunFolder(path).locked():``."""

    def __init__(self, path: str):
        self.path = path

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunFolder"]:
        """Creates the folder if needed and holds its lock; raises RunFolderError if taken."""
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise RunFolderError(f"--model_dir {self.path} exists and is not a folder")
        try:
            os.makedirs(self.path, exist_ok=True)
            fd = os.open(self.join(LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise RunFolderError(f"--model_dir {self.path} cannot be written: "
                                 f"{e.strerror or e}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunFolderError(f"--model_dir {self.path}: cannot lock ({e.strerror})") from None
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                raise RunFolderError(
                    f"--model_dir {self.path} is in use by another run (pid {holder or '?'}); "
                    "wait for it to finish or choose another --model_dir") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._refuse_symlinked_subfolders()
            yield self
        finally:
            os.close(fd)  # releases the lock

    def _refuse_symlinked_subfolders(self) -> None:
        for name in SUBFOLDERS:
            if os.path.islink(self.join(name)):
                raise RunFolderError(f"{self.join(name)} is a symlink; refusing to write through "
                                     "it (remove it, or choose another --model_dir)")

    def _replace_with(self, name: str, write: Callable[[str], None], suffix: str = "") -> str:
        """Calls ``write(temporary_path)``, then renames the result over ``name``."""
        target = self.join(name)
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=self.path)
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
        try:
            write(temporary)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise
        return target

    def write_bytes(self, name: str, data: bytes) -> str:
        def write(path: str) -> None:
            with open(path, "wb") as f:
                f.write(data)
        return self._replace_with(name, write)

    def write_json(self, name: str, value: Any) -> str:
        return self.write_bytes(name, json.dumps(value, indent=2).encode())

    def save_model(self, model, name: str = "model.keras") -> str:
        return self._replace_with(name, model.save, suffix=".keras")

    def export_savedmodel(self, model, name: str = "savedmodel") -> str:
        """Writes a SavedModel folder next to ``name``, then swaps it in."""
        staging = tempfile.mkdtemp(prefix=f".{name}.", dir=self.path)
        try:
            export_dir = os.path.join(staging, name)
            model.export(export_dir, format="tf_saved_model")
            target = self.join(name)
            if os.path.islink(target) or os.path.isfile(target):
                os.remove(target)
            elif os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(export_dir, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.join(name)

    def read_metrics(self, name: str = "metrics.json") -> Dict[str, Any]:
        """A previous run's metrics.json, checked; ``{}`` when there is none.

        Raises:
            RunFolderError: too large, not JSON, or not the structure this project writes.
        """
        path = self.join(name)
        if not os.path.lexists(path):
            return {}
        if os.path.islink(path):
            raise RunFolderError(f"{path} is a symlink, not a file this project wrote; remove it "
                                 "or choose another --model_dir")
        try:
            if os.path.getsize(path) > MAX_METRICS_BYTES:
                raise RunFolderError(f"{path} is larger than {MAX_METRICS_BYTES >> 20} MB; not ours")
            with open(path, "rb") as f:
                value = json.loads(f.read(MAX_METRICS_BYTES))
        except (OSError, ValueError, RecursionError) as e:
            raise RunFolderError(f"{path} is unreadable or not JSON ({type(e).__name__}); "
                                 "move it away to start the run afresh") from None
        problem = _metrics_problem(value)
        if problem:
            raise RunFolderError(f"{path}: {problem}; move it away to start the run afresh")
        return value


def _metrics_problem(value: Any) -> str:
    if not isinstance(value, dict):
        return "not a JSON object"
    history = value.get("history", [])
    if not isinstance(history, list) or not all(_is_history_row(row) for row in history):
        return "its history is not a list of {step: int, metric: number} rows"
    for key in ("steps", "train_seconds", "wall_seconds"):
        if key in value and not _is_number(value[key]):
            return f"{key} is not a number"
    if "flags" in value and not isinstance(value["flags"], dict):
        return "flags is not an object"
    return ""


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_history_row(row: Any) -> bool:
    return (isinstance(row, dict) and type(row.get("step")) is int
            and all(isinstance(k, str) and _is_number(v) for k, v in row.items()))


def history_up_to(metrics: Dict[str, Any], step: int) -> List[Dict[str, Any]]:
    """Rows logged at or before ``step``; a crashed process's later rows are logged again."""
    return [row for row in metrics.get("history", []) if row["step"] <= step]
