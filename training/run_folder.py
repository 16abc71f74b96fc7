"""The run folder (--model_dir): ours alone while we run, written without following links.

A run takes an exclusive ``fcntl`` lock on ``<model_dir>/.lock``, so a
second run on the same folder stops at once instead of overwriting the
first one's checkpoints. The lock file must be a regular file with one link
that this user owns (a hard link to a file elsewhere would be overwritten).
Files are written to a temporary name in the same folder and renamed over
the target: a pre-existing symlink at the target is replaced, never written
through. The subfolders TensorFlow writes into (checkpoints, TensorBoard
logs) are refused if they are symlinks. ``metrics.json`` is read as
untrusted input: bounded in bytes and in the values it may hold.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import shutil
import stat
import tempfile
from typing import Any, Callable, Dict, Iterator, List

from training.errors import RunFolderError
from training.state_files import read_run_state

LOCK_NAME = ".lock"
# Folders TensorFlow writes into by name; they must be real folders.
SUBFOLDERS = ("checkpoints", "train", "validation", "test", "workers", "savedmodel")
# metrics.json keeps at most this many history rows (TensorBoard keeps them all);
# a row is ~100 bytes and holds a handful of values.
MAX_HISTORY_ROWS = 100_000
MAX_METRICS_BYTES = 32 << 20
# What parsing may build, counted in the text before it is parsed: a file of
# 30 MB of "{}" or "[1,1,...]" would otherwise become gigabytes of objects.
MAX_METRICS_CONTAINERS = MAX_HISTORY_ROWS + 1_000
MAX_METRICS_VALUES = 10 * MAX_HISTORY_ROWS
# The keys a resumed run reads; the rest of a previous metrics.json is dropped.
METRICS_KEYS = ("status", "steps", "train_seconds", "wall_seconds", "flags", "history", "saved_at")
# Integers past 2**53 lose precision as JSON numbers; no count of ours comes near.
MAX_JSON_INT = 1 << 53
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


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
            fd = os.open(self.join(LOCK_NAME),
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RunFolderError(f"{self.join(LOCK_NAME)} is a symlink; refusing to write "
                                     "through it (remove it, or choose another --model_dir)") from None
            raise RunFolderError(f"--model_dir {self.path} cannot be written: "
                                 f"{e.strerror or e}") from None
        try:
            self._check_lock_file(fd)
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

    def _check_lock_file(self, fd: int) -> None:
        """Refuses a lock that is not a plain file of ours: the pid is written into it."""
        info = os.fstat(fd)
        path = self.join(LOCK_NAME)
        if not stat.S_ISREG(info.st_mode):
            raise RunFolderError(f"{path} is not a regular file (a FIFO, device or folder); "
                                 "remove it, or choose another --model_dir")
        if info.st_nlink != 1:
            raise RunFolderError(f"{path} has {info.st_nlink} hard links, so writing it would "
                                 "change a file elsewhere; remove it, or choose another --model_dir")
        if info.st_uid != os.geteuid():
            raise RunFolderError(f"{path} belongs to another user (uid {info.st_uid}); "
                                 "choose another --model_dir")

    def _refuse_symlinked_subfolders(self) -> None:
        for name in SUBFOLDERS:
            if os.path.islink(self.join(name)):
                raise RunFolderError(f"{self.join(name)} is a symlink; refusing to write through "
                                     "it (remove it, or choose another --model_dir)")

    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Turns a failed write (a full disk, a read-only or failing device) into a
        RunFolderError naming the folder; removes the partial checkpoints
        TensorFlow leaves (``ckpt-N_temp/``) on the way."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - OSError, or TensorFlow's OpError for its files
            if not (isinstance(e, OSError) or type(e).__module__.startswith("tensorflow")):
                raise
            self._remove_partial_checkpoints()
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _reason(e)
            raise RunFolderError(f"{self.path}: writing {what} failed ({reason}); nothing "
                                 "partial was left; free space or fix the folder, then run "
                                 "again to resume") from None

    def _remove_partial_checkpoints(self) -> None:
        folder = self.join("checkpoints")
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                if name.endswith("_temp") and os.path.isdir(os.path.join(folder, name)) \
                        and not os.path.islink(os.path.join(folder, name)):
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)

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

        Only ``METRICS_KEYS`` are kept.

        Raises:
            RunFolderError: a symlink or not a regular file, too large, holding
                more values than this project writes, not JSON, or not the
                structure this project writes.
        """
        path = self.join(name)
        how_to_fix = "move it away to start the run afresh"
        raw = read_run_state(path, MAX_METRICS_BYTES, RunFolderError, how_to_fix)
        if raw is None:
            return {}
        problem = _too_many_values(raw)
        if problem:
            raise RunFolderError(f"{path} {problem}; not a file this project wrote; {how_to_fix}")
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise RunFolderError(f"{path} is unreadable or not JSON ({type(e).__name__}); "
                                 f"{how_to_fix}") from None
        problem = _metrics_problem(value)
        if problem:
            raise RunFolderError(f"{path}: {problem}; {how_to_fix}")
        return {key: value[key] for key in METRICS_KEYS if key in value}


def _too_many_values(raw: bytes) -> str:
    """What parsing ``raw`` would build beyond the bounds, as a phrase ("" if within)."""
    bare = _JSON_STRING.sub(b'""', raw)
    containers = bare.count(b"{") + bare.count(b"[")
    if containers > MAX_METRICS_CONTAINERS:
        return f"holds {containers} objects and lists, more than the {MAX_METRICS_CONTAINERS} allowed"
    values = bare.count(b",") + bare.count(b":")
    if values > MAX_METRICS_VALUES:
        return f"holds {values} values, more than the {MAX_METRICS_VALUES} allowed"
    return ""


def _reason(error: BaseException) -> str:
    """What a TensorFlow file error says went wrong: its "path; reason" without the
    graph node it names, e.g. "No space left on device"."""
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", str(error)).strip()
    lines = text.splitlines()
    text = lines[0] if lines else type(error).__name__
    return text.rsplit("; ", 1)[-1].strip()[:200]


def capped_history(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The newest ``MAX_HISTORY_ROWS`` rows: what metrics.json keeps."""
    return history[-MAX_HISTORY_ROWS:]


def _metrics_problem(value: Any) -> str:
    if not isinstance(value, dict):
        return "not a JSON object"
    history = value.get("history", [])
    if not isinstance(history, list) or not all(_is_history_row(row) for row in history):
        return "its history is not a list of {step: int, metric: finite number} rows"
    for key in ("steps", "train_seconds", "wall_seconds"):
        if key in value and not _is_number(value[key]):
            return f"{key} is not a finite number"
    if "flags" in value and not isinstance(value["flags"], dict):
        return "flags is not an object"
    saved_at = value.get("saved_at", {})
    if not isinstance(saved_at, dict) or not all(
            isinstance(totals, dict) and all(_is_number(v) for v in totals.values())
            for totals in saved_at.values()):
        return "saved_at is not an object of {step: {total: finite number}}"
    return ""


def _is_number(x: Any) -> bool:
    """A finite JSON number of a size this project writes (a 4,000-digit integer is not)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return abs(x) < MAX_JSON_INT if isinstance(x, int) else math.isfinite(x)


def _is_history_row(row: Any) -> bool:
    return (isinstance(row, dict) and type(row.get("step")) is int and 0 <= row["step"] < MAX_JSON_INT
            and all(isinstance(k, str) and _is_number(v) for k, v in row.items()))


def history_up_to(metrics: Dict[str, Any], step: int) -> List[Dict[str, Any]]:
    """Rows logged at or before ``step``; a crashed process's later rows are logged again."""
    return [row for row in metrics.get("history", []) if row["step"] <= step]
