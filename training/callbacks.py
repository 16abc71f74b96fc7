"""What watches a training run: progress lines and TensorBoard scalars, the
non-finite-loss guard, and SIGINT/SIGTERM handling."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional

import keras
import tensorflow as tf
from absl import logging

from training.config import TrainConfig
from training.errors import NonFiniteLossError
from training.optimizers import current_learning_rate


class StopSignals:
    """SIGINT/SIGTERM: the first asks training to stop after the current step
    (and save); a second one ends the process at once, without saving."""

    def __init__(self):
        self.signum: Optional[int] = None

    def _handle(self, signum, frame):
        if self.signum is not None:
            os.write(sys.stderr.fileno(), f"stopped: second {signal.Signals(signum).name}, "
                     "exiting without saving\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        logging.warning("%s received: stopping after the current step (send it again to stop "
                        "at once, without saving)", signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopSignals"]:
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def writer_scope(writer, step: int):
    """``writer.as_default(step)``, or nothing for workers that write no logs."""
    return writer.as_default(step=step) if writer is not None else tf.summary.create_noop_writer().as_default()


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class ProgressLogger(keras.callbacks.Callback):
    """Logs step, loss, accuracy, examples/s and time left; writes step-indexed scalars.

    Loss and accuracy are means over the steps since the previous log line.
    Every curve is keyed by the optimizer's step counter, which a restored
    checkpoint carries on (Keras' own TensorBoard callback counts epochs from
    zero in every process, so it is not used).
    """

    def __init__(self, config: TrainConfig, train_writer, val_writer, history: List[Dict],
                 stop: StopSignals, last_checkpoint: Callable[[], Optional[str]]):
        super().__init__()
        self.config = config
        self.stop = stop
        self.last_checkpoint = last_checkpoint
        self.train_writer = train_writer
        self.val_writer = val_writer
        self.history = history
        self.examples_per_second = float("nan")
        self._last_time = None
        self._last_step = None
        self.train_seconds = 0.0

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        self._last_time = time.perf_counter()
        self._last_step = self._step()

    def on_epoch_begin(self, epoch, logs=None):
        self._window_start = (0, 0.0, 0.0)  # batches seen, their loss and accuracy sums

    def _window_means(self, batches: int, loss: float, accuracy: float):
        """Means over the batches since the last log, from Keras' per-epoch running means."""
        seen, loss_sum, accuracy_sum = self._window_start
        loss_total, accuracy_total = loss * batches, accuracy * batches
        self._window_start = (batches, loss_total, accuracy_total)
        count = max(batches - seen, 1)
        return (loss_total - loss_sum) / count, (accuracy_total - accuracy_sum) / count

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss} at step {step}; last good checkpoint: "
                f"{self.last_checkpoint() or 'none (no checkpoint was saved yet)'}")
        if self.stop.signum is not None:
            self.model.stop_training = True
        if step % self.config.log_every and step != self.config.steps:
            return
        self._check_weights_finite(step, loss)
        now = time.perf_counter()
        elapsed = now - self._last_time
        self.train_seconds += elapsed
        done = step - self._last_step
        self.examples_per_second = done * self.config.batch_size / max(elapsed, 1e-9)
        self._last_time, self._last_step = now, step
        left = (self.config.steps - step) * self.config.batch_size / max(self.examples_per_second, 1e-9)
        lr = current_learning_rate(self.model.optimizer)
        loss, accuracy = self._window_means(batch + 1, loss, float(logs["accuracy"]))
        logging.info("step %d/%d  loss %.4f  accuracy %.4f  %.0f examples/s  lr %.2e  %s left",
                     step, self.config.steps, loss, accuracy, self.examples_per_second, lr,
                     format_seconds(left))
        with writer_scope(self.train_writer, step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("accuracy", accuracy)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("examples_per_second", self.examples_per_second)
        self.history.append({"step": step, "loss": loss, "accuracy": accuracy})

    def _check_weights_finite(self, step: int, loss: float) -> None:
        """A NaN that ReLU hides from the loss (e.g. from NaN inputs) still reaches the
        weights through their gradients: checked at every progress line."""
        for variable in self.model.trainable_variables:
            if not bool(tf.reduce_all(tf.math.is_finite(variable))):
                raise NonFiniteLossError(
                    f"weights {variable.path} became non-finite at step {step} (the loss, "
                    f"{loss:.4g}, did not show it); last good checkpoint: "
                    f"{self.last_checkpoint() or 'none (no checkpoint was saved yet)'}")

    def on_train_end(self, logs=None):
        self.train_seconds += time.perf_counter() - self._last_time
        self._last_time = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        with writer_scope(self.train_writer, step):
            for weight in self.model.weights:
                tf.summary.histogram(weight.path, weight.value)
        if not logs or "val_loss" not in logs:
            return
        val_loss, val_accuracy = float(logs["val_loss"]), float(logs["val_accuracy"])
        logging.info("step %d  validation loss %.4f  accuracy %.4f", step, val_loss, val_accuracy)
        with writer_scope(self.val_writer, step):
            tf.summary.scalar("loss", val_loss)
            tf.summary.scalar("accuracy", val_accuracy)
        self.history.append({"step": step, "val_loss": val_loss, "val_accuracy": val_accuracy})


def mark_session_start(log_dir: str, first_step: int) -> None:
    """Tells TensorBoard that a process starts logging at ``first_step``.

    TensorBoard takes the first SessionLog.START of a run as its beginning and
    every later one as a restart: it drops what it read at or after that
    step, i.e. what a crashed process logged past its last checkpoint, so
    curves carry on without duplicated steps. Event files are read in name
    order; this file's name sorts before those this process writes next in
    the same second, and after a crashed process's (see the caller's wait).
    """
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(log_dir)
    writer.add_event(Event(wall_time=time.time(), step=first_step,
                           session_log=SessionLog(status=SessionLog.START)))
    writer.close()
