"""The absl ``main`` both training scripts share: flags -> run -> one-line errors."""

from __future__ import annotations

import sys
from typing import Callable, Dict, Sequence

from absl import app

from datasets import DataError


def main_for(run: Callable[..., Dict]) -> Callable[[Sequence[str]], None]:
    """An absl ``main`` calling ``run(FLAGS)``; data problems exit 2 with one line."""

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        from absl import flags

        try:
            run(flags.FLAGS)
        except (DataError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return main
