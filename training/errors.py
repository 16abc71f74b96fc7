"""What can stop a run, each with its exit code (see ``training.cli``)."""

from __future__ import annotations

import signal
from typing import Optional


class UsageError(ValueError):
    """A flag value that cannot work with this data or machine; the message names the flag."""


class StrategyError(ValueError):
    """The requested distribution strategy cannot run here; the message says why."""


class RunFolderError(Exception):
    """--model_dir cannot be used: a file, unwritable, locked by another run, or holding bad state."""


class CheckpointError(Exception):
    """The checkpoint to resume or evaluate is missing, corrupt, or from another model."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was saved before stopping."""

    def __init__(self, signum: int, step: int, checkpoint: Optional[str]):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; "
                         f"checkpoint saved: {checkpoint}")
        self.signum = signum
