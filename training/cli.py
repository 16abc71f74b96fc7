"""The absl ``main`` both training scripts share: flags -> run -> one-line errors."""

from __future__ import annotations

import sys
from typing import Callable, Dict, Sequence

from absl import app, flags

from datasets import DataError
from training.distribute import StrategyError
from training.trainer import Interrupted, NonFiniteLossError

# Exit codes: 2 bad data or setup, 3 non-finite loss, 128 + signal when stopped.
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


def main_for(run: Callable[..., Dict]) -> Callable[[Sequence[str]], None]:
    """An absl ``main`` calling ``run(FLAGS)``; known failures exit with one line."""

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            run(flags.FLAGS)
        except (DataError, FileNotFoundError, StrategyError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        except NonFiniteLossError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_NON_FINITE)
        except Interrupted as e:
            print(f"stopped: {e}", file=sys.stderr)
            sys.exit(128 + e.signum)

    return main
