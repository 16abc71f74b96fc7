"""The absl entry point both training scripts share: flags -> run -> one-line errors.

Exit codes: 0 done; 2 bad input (flags, data, run folder, checkpoint,
strategy); 3 non-finite loss; 128 + signal number when stopped by a signal;
1 anything unexpected (one line; ``--verbosity=1`` prints the traceback).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import tempfile
import traceback
from typing import Callable, Dict, List, NoReturn, Sequence

from absl import app, flags, logging

from datasets import DataError
from training.errors import (CheckpointError, Interrupted, NonFiniteLossError, RunFolderError,
                             StrategyError, UsageError)
from training.state_files import StateFileError, read_state_file

EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
# An error message quotes at most this much (a hostile value could be megabytes);
# a longer word (a path) keeps its start and end, so the reason after it survives.
MESSAGE_LIMIT = 1000
WORD_LIMIT = 160
# Flag files are read by absl before any flag is checked: bounded here first.
MAX_FLAGFILE_BYTES = 1 << 20
MAX_FLAGFILES = 64
LIBRARIES = ("tensorflow", "keras", "tensorboard")
BAD_INPUT = (DataError, UsageError, RunFolderError, CheckpointError, StrategyError)


def _fail(prefix: str, error: object, code: int) -> NoReturn:
    # What TensorFlow logs while objects are torn down (e.g. "unrestored values")
    # would otherwise follow, and bury, the one line that says what went wrong.
    std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)
    text = shorten(str(error))
    print(f"{prefix}: {text}", file=sys.stderr)
    sys.exit(code)


def shorten(text: str) -> str:
    """One line of at most ~MESSAGE_LIMIT characters: words longer than WORD_LIMIT
    (paths) are cut in the middle, then the end if it is still too long."""
    words = []
    for word in text.split():
        if len(word) > WORD_LIMIT:
            word = f"{word[:WORD_LIMIT // 2]}...{word[-(WORD_LIMIT // 2 - 3):]}"
        words.append(word)
    text = " ".join(words)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " ..."


def _flag_file_arguments(args: Sequence[str]) -> List[str]:
    """The paths given to --flagfile in ``args`` (both spellings absl accepts)."""
    paths = []
    for i, arg in enumerate(args):
        for prefix in ("--flagfile=", "-flagfile="):
            if arg.startswith(prefix):
                paths.append(arg[len(prefix):])
        if arg in ("--flagfile", "-flagfile") and i + 1 < len(args):
            paths.append(args[i + 1])
    return paths


def check_flag_files(argv: Sequence[str]) -> None:
    """Refuses flag files absl would block on or read without end, nested ones included.

    Raises:
        UsageError: a missing, non-regular (FIFO, device) or oversized flag file,
            or more than MAX_FLAGFILES of them.
    """
    pending, seen = _flag_file_arguments(argv[1:]), 0
    while pending:
        path = os.path.expanduser(pending.pop())
        seen += 1
        if seen > MAX_FLAGFILES:
            raise UsageError(f"more than {MAX_FLAGFILES} --flagfile files (nested ones included)")
        try:
            raw = read_state_file(path, MAX_FLAGFILE_BYTES, follow_symlinks=True)
        except StateFileError as e:
            raise UsageError(f"--flagfile: {e}") from None
        if raw is None:
            raise UsageError(f"--flagfile={path} does not exist")
        pending.extend(_flag_file_arguments(raw.decode("utf-8", "replace").split()))


def use_temporary_homes_if_needed() -> None:
    """Points Keras and matplotlib at a temporary folder when the home folder cannot
    take their files (HOME empty, missing or read-only), instead of writing
    ``~/.keras`` or ``~/.cache`` somewhere else (an empty HOME makes them relative)."""
    home = os.environ.get("HOME", "")
    usable = bool(home) and os.path.isabs(home) and os.path.isdir(home) and os.access(home, os.W_OK)
    if usable:
        return
    base = tempfile.mkdtemp(prefix="hand-written-backprop-")
    for variable, sub in (("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "matplotlib")):
        if not os.environ.get(variable):
            os.environ[variable] = os.path.join(base, sub)
            os.makedirs(os.environ[variable], exist_ok=True)


class _LibraryInfoFilter(std_logging.Filter):
    """Drops INFO records that TensorFlow and Keras log through absl."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        from_library = any(f"{os.sep}{name}{os.sep}" in record.pathname for name in LIBRARIES)
        return record.levelno >= std_logging.WARNING or not from_library


def _quiet_library_info() -> None:
    """TensorFlow's INFO lines (e.g. one per checkpoint) would bury the progress lines;
    ``--verbosity=1`` keeps them."""
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    logging.get_absl_logger().addFilter(_LibraryInfoFilter())


def parse_flags(argv: List[str]) -> List[str]:
    """absl's parsing, but a bad flag (or flag file) is one line on stderr and exit code 2."""
    try:
        check_flag_files(argv)
        return flags.FLAGS(argv)
    except (flags.Error, UsageError) as e:
        _fail("error", e, EXIT_BAD_INPUT)


def main_for(run: Callable[..., Dict]) -> Callable[[Sequence[str]], None]:
    """An absl ``main`` calling ``run(FLAGS)``; every failure exits with one line."""

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            _fail("error", f"unexpected arguments: {' '.join(argv[1:])}", EXIT_BAD_INPUT)
        if logging.get_verbosity() < logging.DEBUG:
            _quiet_library_info()
        use_temporary_homes_if_needed()
        try:
            run(flags.FLAGS)
        except BAD_INPUT as e:
            _fail("error", e, EXIT_BAD_INPUT)
        except NonFiniteLossError as e:
            _fail("error", e, EXIT_NON_FINITE)
        except Interrupted as e:
            _fail("stopped", e, 128 + e.signum)
        except Exception as e:  # noqa: BLE001 - the boundary: nothing escapes as a bare traceback
            if logging.get_verbosity() >= logging.DEBUG:
                traceback.print_exc()
            _fail("error", f"unexpected {type(e).__name__}: {e} (run again with --verbosity=1 "
                  "for the traceback)", EXIT_UNEXPECTED)

    return main


def start(main: Callable[[Sequence[str]], None]) -> None:
    """``app.run`` with one-line flag errors."""
    app.run(main, flags_parser=parse_flags)
