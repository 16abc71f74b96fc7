"""A run's checkpoints: their state file read as untrusted input, the run's
identity stored inside each checkpoint, restoring only what belongs to this run.

TensorFlow's ``CheckpointManager`` deletes every checkpoint its state file
lists beyond ``max_to_keep``, wherever the paths point; so the state file is
read here first, and any path that is not a ``ckpt-N`` of this folder stops
the run before the manager sees it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Optional

import keras
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.checkpoint import checkpoint_management

from training.config import TrainConfig
from training.errors import CheckpointError
from training.state_files import read_run_state

# Flags that change what a checkpoint holds: resuming across them cannot work.
IDENTITY_FLAGS = ("dataset", "model", "optimizer", "precision")
MESSAGE_LIMIT = 200
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's index of checkpoints
PREFIX = "ckpt"
# A manager keeping 3 checkpoints writes a few hundred bytes.
MAX_STATE_BYTES = 64 << 10
_OUR_NAME = re.compile(rf"{PREFIX}-[0-9]{{1,18}}")
# The run's identity: its JSON text as int32 byte values (a string variable cannot
# be broadcast between the workers of a multi-worker run).
IDENTITY_KEY = "run_identity/.ATTRIBUTES/VARIABLE_VALUE"
MAX_IDENTITY_BYTES = 4096


def identity(config: TrainConfig) -> Dict[str, Any]:
    """What a checkpoint must have been trained as to be resumed by ``config``."""
    return {name: getattr(config, name) for name in IDENTITY_FLAGS}


def make_checkpoint(model: keras.Model, config: TrainConfig,
                    averaging: Optional[tf.train.Checkpoint] = None) -> tf.train.Checkpoint:
    """Model, optimizer (with its step counter), the weight average if the run
    keeps one, and the run's identity, saved together."""
    text = json.dumps(identity(config), sort_keys=True).encode()
    run_identity = tf.Variable(list(text), dtype=tf.int32, trainable=False, name="run_identity")
    extra = {"averaging": averaging} if averaging is not None else {}
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer, run_identity=run_identity,
                               **extra)


def check_same_model(saved: Dict[str, Any], config: TrainConfig, folder: str) -> None:
    """Raises CheckpointError naming the first identity flag that differs from the saved run."""
    if "precision" not in saved and "mixed_precision" in saved:  # the older flag
        saved = {**saved, "precision": "mixed_float16" if saved["mixed_precision"] else "float32"}
    for name in IDENTITY_FLAGS:
        if name in saved and saved[name] != getattr(config, name):
            flag = "the data set" if name == "dataset" else f"--{name}"
            raise CheckpointError(
                f"{folder} holds a run with {flag}={str(saved[name])[:40]}, this run has "
                f"{flag}={getattr(config, name)}; use the same value or another --model_dir")


def read_state(directory: str) -> Optional[checkpoint_management.CheckpointState]:
    """The checkpoint state file of ``directory``, checked; None if there is none.

    Raises:
        CheckpointError: not a regular file, too large, not a checkpoint state,
            or listing a path that is not a checkpoint of this folder
            (absolute, with ``..`` or another name).
    """
    path = os.path.join(directory, STATE_FILE)
    how_to_fix = "move the folder away to start afresh"
    raw = read_run_state(path, MAX_STATE_BYTES, CheckpointError, how_to_fix)
    if raw is None:
        return None
    state = checkpoint_management.CheckpointState()
    try:
        text_format.Parse(raw.decode("utf-8"), state)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({_first_line(e)}); {how_to_fix}") from None
    for name in [state.model_checkpoint_path, *state.all_model_checkpoint_paths]:
        if not _OUR_NAME.fullmatch(name):
            raise CheckpointError(
                f"{path} names {name[:80]!r}, which is not a checkpoint of this folder "
                f"({PREFIX}-N); TensorFlow would delete what it names; {how_to_fix}")
    return state


def latest(directory: str) -> Optional[str]:
    """The newest checkpoint's path prefix, or None if ``directory`` has no checkpoint state.

    Raises:
        CheckpointError: the state file is not ours (``read_state``), or names
            no existing checkpoint (starting afresh would silently overwrite it).
    """
    state = read_state(directory)
    if state is None:
        return None
    path = os.path.join(directory, state.model_checkpoint_path)
    if not os.path.isfile(path + ".index"):
        raise CheckpointError(f"{directory}/{STATE_FILE} is corrupt or names no existing "
                              "checkpoint; move the folder away to start afresh")
    return path


def saved_identity(path: str) -> Optional[Dict[str, Any]]:
    """The run identity stored in checkpoint ``path``; None for one saved without it."""
    try:
        reader = tf.train.load_checkpoint(path)
        if not reader.has_tensor(IDENTITY_KEY):
            return None
        codes = reader.get_tensor(IDENTITY_KEY)
        if codes.ndim != 1 or codes.size > MAX_IDENTITY_BYTES or codes.min(initial=0) < 0 \
                or codes.max(initial=0) > 255:
            raise ValueError("not a run identity of this project")
        value = json.loads(bytes(codes.astype("uint8")))
    except Exception as e:  # noqa: BLE001 - a corrupt index fails in many ways
        raise CheckpointError(f"checkpoint {path} is corrupt ({_first_line(e)})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint {path} holds a run identity this project did not write")
    return value


def restore(checkpoint: tf.train.Checkpoint, model: keras.Model, path: str, config: TrainConfig,
            folder: str, previous_flags: Dict[str, Any]) -> None:
    """Restores weights and optimizer state from ``path`` (optimizer slots built first),
    after checking that the checkpoint's own identity (or, for one saved without
    it, metrics.json's flags) matches this run.

    Raises:
        CheckpointError: another data set, model, optimizer or precision; the
            files are truncated or corrupt, or hold another model.
    """
    saved = saved_identity(path)
    check_same_model(previous_flags if saved is None else saved, config, folder)
    if saved is None:  # saved before identities were stored: restore without one
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    try:
        model.optimizer.build(model.trainable_variables)
        checkpoint.restore(path).assert_existing_objects_matched()
    except Exception as e:  # noqa: BLE001 - a truncated file fails in many ways (IndexError, OpError, ...)
        raise CheckpointError(f"checkpoint {path} is corrupt or belongs to another model "
                              f"({_first_line(e)})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:MESSAGE_LIMIT]
