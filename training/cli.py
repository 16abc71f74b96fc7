"""The absl entry point both training scripts share: flags -> run -> one-line errors.

Exit codes: 0 done; 2 bad input (flags, data, run folder, checkpoint,
strategy); 3 non-finite loss; 128 + signal number when stopped by a signal;
1 anything unexpected (one line; ``--verbosity=1`` prints the traceback).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import traceback
from typing import Callable, Dict, List, NoReturn, Sequence

from absl import app, flags, logging

from datasets import DataError
from training.errors import (CheckpointError, Interrupted, NonFiniteLossError, RunFolderError,
                             StrategyError, UsageError)

EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
# An error message quotes at most this much (a hostile value could be megabytes).
MESSAGE_LIMIT = 1000
LIBRARIES = ("tensorflow", "keras", "tensorboard")
BAD_INPUT = (DataError, UsageError, RunFolderError, CheckpointError, StrategyError)


def _fail(prefix: str, error: object, code: int) -> NoReturn:
    # What TensorFlow logs while objects are torn down (e.g. "unrestored values")
    # would otherwise follow, and bury, the one line that says what went wrong.
    std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)
    text = " ".join(str(error).split())
    if len(text) > MESSAGE_LIMIT:
        text = text[:MESSAGE_LIMIT] + " ..."
    print(f"{prefix}: {text}", file=sys.stderr)
    sys.exit(code)


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
    """absl's parsing, but a bad flag is one line on stderr and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _fail("error", e, EXIT_BAD_INPUT)


def main_for(run: Callable[..., Dict]) -> Callable[[Sequence[str]], None]:
    """An absl ``main`` calling ``run(FLAGS)``; every failure exits with one line."""

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            _fail("error", f"unexpected arguments: {' '.join(argv[1:])}", EXIT_BAD_INPUT)
        if logging.get_verbosity() < logging.DEBUG:
            _quiet_library_info()
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
