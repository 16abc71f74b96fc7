"""The training loop shared by train_mnist.py and train_cifar.py.

``run(config, load_data)`` trains (or evaluates) one model and returns its
metrics. Training goes in rounds of ``eval_every`` steps, each a
``model.fit`` call followed by validation and a checkpoint, so a run resumed
from its ``model_dir`` continues at the step it stopped.

What lands in ``model_dir``:
    checkpoints/        tf.train.Checkpoint of model, optimizer (its step counter)
    train/, validation/ TensorBoard event files (scalars, histograms, images)
    metrics.json        the history (one row per logged step and per validation),
                        rewritten with every checkpoint; at the end also the test
                        figures, speed and the flags used
    model.keras         the trained model (load after ``import custom_layers``)
    savedmodel/         with --export_savedmodel
    training_curves.png, filters.png, confusion_matrix.png, predictions.png
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from typing import Any, Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import models
from datasets import pipeline
from datasets.splits import Dataset
from training import distribute, plots
from training.config import TrainConfig

SAMPLE_IMAGES = 16
CHECKPOINTS_KEPT = 3


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was saved before stopping."""

    def __init__(self, signum: int, step: int, checkpoint: Optional[str]):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; "
                         f"checkpoint saved: {checkpoint}")
        self.signum = signum


class _StopSignals:
    """Turns SIGINT/SIGTERM into a request that training honours after the current step."""

    def __init__(self):
        self.signum: Optional[int] = None

    def _handle(self, signum, frame):
        self.signum = signum

    @contextlib.contextmanager
    def installed(self):
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def make_learning_rate(config: TrainConfig):
    """A float or a Keras schedule over ``config.steps`` optimizer steps."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    boundaries = [int(config.steps * 0.5), int(config.steps * 0.75)]
    values = [config.learning_rate * f for f in (1.0, 0.1, 0.01)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    lr = make_learning_rate(config)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(lr)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)


class ProgressLogger(keras.callbacks.Callback):
    """Logs step, loss, accuracy, examples/s and time left; writes step-indexed scalars.

    Loss and accuracy are means over the steps since the previous log line.

    Keras' TensorBoard callback counts from zero in every process, so the
    step-indexed curves come from here, keyed by the optimizer's own step
    counter, which a restored checkpoint carries on.
    """

    def __init__(self, config: TrainConfig, train_writer, val_writer, history: List[Dict],
                 stop: "_StopSignals", last_checkpoint: Callable[[], Optional[str]]):
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
                     _format_seconds(left))
        with _maybe(self.train_writer, step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("accuracy", accuracy)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("examples_per_second", self.examples_per_second)
        self.history.append({"step": step, "loss": loss, "accuracy": accuracy})

    def on_train_end(self, logs=None):
        self.train_seconds += time.perf_counter() - self._last_time
        self._last_time = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if not logs or "val_loss" not in logs:
            return
        step = self._step()
        val_loss, val_accuracy = float(logs["val_loss"]), float(logs["val_accuracy"])
        logging.info("step %d  validation loss %.4f  accuracy %.4f", step, val_loss, val_accuracy)
        with _maybe(self.val_writer, step):
            tf.summary.scalar("loss", val_loss)
            tf.summary.scalar("accuracy", val_accuracy)
        self.history.append({"step": step, "val_loss": val_loss, "val_accuracy": val_accuracy})


def _maybe(writer, step: int):
    """``writer.as_default(step)``, or nothing for workers that write no logs."""
    return writer.as_default(step=step) if writer is not None else tf.summary.create_noop_writer().as_default()


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


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _read_json(path: str, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)  # never leaves a half-written file behind


def build_compiled_model(config: TrainConfig, data: Dataset) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    model = models.build_model(
        config.model,
        input_shape=data.train.images.shape[1:],
        num_classes=len(data.class_names),
        layers=config.layers,
        dropout_rate=config.dropout_rate,
    )
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile,
    )
    return model


def prepare_for_multi_worker(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Works around Keras 3.15 ``fit`` under MultiWorkerMirroredStrategy.

    Keras 3 and collective strategies disagree in two places
    (tensorflow/tensorflow#72388): before training, ``fit`` builds the model
    symbolically from a batch that it reduces with ``strategy.reduce``, which
    fails eagerly on a PerReplica batch; and every step it averages the scalar
    metrics with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
    scalars. Building from one local batch here, and averaging scalars over
    ``axis=None`` (an all-reduce mean across workers), fixes both; gradients
    were never affected.
    """
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    features, labels = next(iter(dataset))
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=(features, labels))
    model._maybe_symbolic_build = lambda *args, **kwargs: None

    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, "scalar_safe", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if keras_tf_trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.scalar_safe = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica


def evaluate(model: keras.Model, data: Dataset, batch_size: int) -> Dict[str, Any]:
    """Test loss, accuracy, predictions and confusion matrix."""
    test = pipeline.eval_dataset(data.test, batch_size, data.normalization)
    probabilities = model.predict(test.map(lambda x, y: x), verbose=0)
    predictions = np.argmax(probabilities, axis=1)
    labels = data.test.labels
    eps = 1e-7
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "test_loss": float(-np.mean(np.log(np.clip(picked, eps, 1.0)))),
        "test_accuracy": float(np.mean(predictions == labels)),
        "predictions": predictions,
        "confusion_matrix": plots.confusion_matrix(labels, predictions, len(data.class_names)),
    }


def write_pictures(model: keras.Model, data: Dataset, results: Dict[str, Any],
                   history: List[Dict], model_dir: str, writer, step: int) -> None:
    """PNG files in ``model_dir`` and the same images in TensorBoard."""
    first_kernel = next(layer.weights[0] for layer in model.layers
                        if layer.weights and len(layer.weights[0].shape) == 4)
    images = pipeline.as_float(data.test.images, SAMPLE_IMAGES)
    figures = {
        "training_curves": plots.training_curves(history),
        "filters": plots.filter_grid(np.asarray(first_kernel.numpy())),
        "confusion_matrix": plots.confusion_matrix_figure(results["confusion_matrix"], data.class_names),
        "predictions": plots.sample_predictions(images, data.test.labels[:SAMPLE_IMAGES],
                                                results["predictions"][:SAMPLE_IMAGES], data.class_names),
    }
    with writer.as_default(step=step):
        for name, fig in figures.items():
            png = plots.save_png(fig, os.path.join(model_dir, f"{name}.png"))
            tf.summary.image(name, tf.image.decode_png(png)[None])


def export(model: keras.Model, model_dir: str, savedmodel: bool) -> None:
    model.save(os.path.join(model_dir, "model.keras"))
    if savedmodel:
        model.export(os.path.join(model_dir, "savedmodel"), format="tf_saved_model")


def summary_line(metrics: Dict[str, Any]) -> str:
    return (f"test_accuracy={metrics['test_accuracy']:.4f} test_loss={metrics['test_loss']:.4f} "
            f"steps={metrics['steps']} train_seconds={metrics['train_seconds']:.1f}")


def run(config: TrainConfig, load_data: Callable[..., Dataset]) -> Dict[str, Any]:
    """Trains or evaluates as ``config`` says; returns the metrics also in metrics.json.

    Args:
        config: the run's settings.
        load_data: ``load_data(data_dir, validation_size, seed) -> Dataset``.

    Raises:
        datasets.DataError: missing or corrupt data.
        FileNotFoundError: ``mode="eval"`` without a checkpoint in model_dir.
        NonFiniteLossError: the loss became NaN/Inf (nothing is saved after it).
        Interrupted: SIGINT/SIGTERM arrived; a checkpoint was saved first.
        distribute.StrategyError: the strategy cannot run here.
    """
    if config.num_cpu_devices > 1:
        distribute.configure_cpu_devices(config.num_cpu_devices)
    strategy = distribute.make_strategy(config.distribution_strategy)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _run(config, load_data, strategy)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _run(config: TrainConfig, load_data, strategy: tf.distribute.Strategy) -> Dict[str, Any]:
    chief = distribute.is_chief(strategy)
    model_dir = config.resolved_model_dir()
    # Every worker saves (saving is collective), but only the chief into model_dir.
    out_dir = model_dir if chief else os.path.join(model_dir, "workers", distribute.task_name(strategy))
    data = load_data(config.data_dir, config.validation_size, config.seed)
    with strategy.scope():
        model = build_compiled_model(config, data)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(out_dir, "checkpoints"),
                                             max_to_keep=CHECKPOINTS_KEPT)
        restore_from = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
        if restore_from:
            # Build the optimizer's slots first so that restore fills them in now.
            model.optimizer.build(model.trainable_variables)
            checkpoint.restore(restore_from).assert_existing_objects_matched()
    step = int(model.optimizer.iterations.numpy())
    metrics_path = os.path.join(out_dir, "metrics.json")
    previous = _read_json(os.path.join(model_dir, "metrics.json"), {})

    if config.mode == "eval":
        if not restore_from:
            raise FileNotFoundError(f"no checkpoint in {model_dir}/checkpoints to evaluate")
        results = evaluate(model, data, config.batch_size)
        metrics = {"test_accuracy": results["test_accuracy"], "test_loss": results["test_loss"],
                   "steps": step, "train_seconds": previous.get("train_seconds", 0.0)}
        logging.info("evaluated checkpoint %s", restore_from)
        print(summary_line(metrics))
        return metrics

    os.makedirs(out_dir, exist_ok=True)
    if step:
        logging.info("Resuming from step %d (checkpoint %s)", step, restore_from)
    # Rows logged after the checkpoint by a process that died are dropped:
    # this run logs those steps again.
    history = [h for h in previous.get("history", []) if h["step"] <= step]
    train_writer = val_writer = None
    if chief:
        if step:
            time.sleep(1.0)  # a new second: sort after files of a process that just died
        for sub in ("train", "validation"):
            mark_session_start(os.path.join(model_dir, sub), step + 1)
        train_writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
        val_writer = tf.summary.create_file_writer(os.path.join(model_dir, "validation"))
    stop = _StopSignals()
    progress = ProgressLogger(config, train_writer, val_writer, history, stop,
                              lambda: manager.latest_checkpoint or restore_from)
    callbacks = [progress]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(model_dir, histogram_freq=1, write_graph=False))
    validation = (pipeline.eval_dataset(data.validation, config.batch_size, data.normalization)
                  if len(data.validation.labels) else None)
    previous_seconds = previous.get("train_seconds", 0.0)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        prepare_for_multi_worker(model, pipeline.eval_dataset(data.train, config.batch_size))

    def save_progress(status: str) -> None:
        manager.save(checkpoint_number=step)
        _write_json(metrics_path, {"status": status, "steps": step,
                                   "train_seconds": previous_seconds + progress.train_seconds,
                                   "history": history})

    with stop.installed():
        while step < config.steps:
            round_index = step // config.eval_every
            round_steps = min(config.eval_every - step % config.eval_every, config.steps - step)
            # A fresh, reproducible shuffle per round: resuming replays the same rounds.
            train = pipeline.train_dataset(data.train, config.batch_size,
                                           seed=config.seed * 100003 + round_index,
                                           augment=config.augment, normalization=data.normalization)
            model.fit(train, steps_per_epoch=round_steps, initial_epoch=round_index,
                      epochs=round_index + 1,
                      validation_data=validation if stop.signum is None else None,
                      callbacks=callbacks, shuffle=False, verbose=0)
            step = int(model.optimizer.iterations.numpy())
            save_progress("training")
            logging.info("saved checkpoint at step %d", step)
            if stop.signum is not None:
                raise Interrupted(stop.signum, step, manager.latest_checkpoint)

    results = evaluate(model, data, config.batch_size)
    metrics = {
        "status": "done",
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        "steps": step,
        "train_seconds": previous_seconds + progress.train_seconds,
        "examples_per_second": progress.examples_per_second,
        "input_normalization": None if data.normalization is None else {
            "mean": data.normalization[0].tolist(), "std": data.normalization[1].tolist()},
        "flags": config.to_dict(),
        "model_dir": model_dir,
        "replicas": strategy.num_replicas_in_sync,
        "history": history,
    }
    export(model, out_dir, config.export_savedmodel and chief)
    if chief:
        write_pictures(model, data, results, history, model_dir, val_writer, step)
        train_writer.flush()
        val_writer.flush()
    _write_json(metrics_path, metrics)
    print(summary_line(metrics))
    return metrics
