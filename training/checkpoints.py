"""Restoring a run's checkpoint, refusing one that belongs to another model."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from training.config import TrainConfig
from training.errors import CheckpointError

# Flags that change what a checkpoint holds: resuming across them cannot work.
IDENTITY_FLAGS = ("dataset", "model", "optimizer", "mixed_precision")
MESSAGE_LIMIT = 200
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's index of checkpoints


def check_same_model(previous_flags: Dict[str, Any], config: TrainConfig, folder: str) -> None:
    """Raises CheckpointError naming the first identity flag that differs from the saved run."""
    for name in IDENTITY_FLAGS:
        if name in previous_flags and previous_flags[name] != getattr(config, name):
            flag = "the data set" if name == "dataset" else f"--{name}"
            raise CheckpointError(
                f"{folder} holds a run with {flag}={str(previous_flags[name])[:40]}, this run has "
                f"{flag}={getattr(config, name)}; use the same value or another --model_dir")


def latest(directory: str) -> Optional[str]:
    """The newest checkpoint's path prefix, or None if ``directory`` has no checkpoint state.

    Raises:
        CheckpointError: the state file exists but is corrupt or names no
            existing checkpoint (starting afresh would silently overwrite it).
    """
    try:
        path = tf.train.latest_checkpoint(directory)
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"{directory}/checkpoint is corrupt ({_first_line(e)})") from None
    if path is None and os.path.lexists(os.path.join(directory, STATE_FILE)):
        raise CheckpointError(f"{directory}/{STATE_FILE} is corrupt or names no existing checkpoint; "
                              "move the folder away to start afresh")
    return path


def restore(checkpoint: tf.train.Checkpoint, model: keras.Model, path: str) -> None:
    """Restores weights and optimizer state from ``path`` (optimizer slots built first).

    Raises:
        CheckpointError: the files are truncated or corrupt, or hold another model.
    """
    try:
        model.optimizer.build(model.trainable_variables)
        checkpoint.restore(path).assert_existing_objects_matched()
    except Exception as e:  # noqa: BLE001 - a truncated file fails in many ways (IndexError, OpError, ...)
        raise CheckpointError(f"checkpoint {path} is corrupt or belongs to another model "
                              f"({_first_line(e)})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:MESSAGE_LIMIT]
