"""The training loop shared by train_mnist.py and train_cifar.py.

``run(config, load_data)`` trains (or evaluates) one model and returns its
metrics. Training goes in rounds of ``eval_every`` steps, each a
``model.fit`` call followed by validation and a checkpoint, so a run resumed
from its ``model_dir`` continues at the step it stopped.

What lands in ``model_dir``:
    checkpoints/        tf.train.Checkpoint of model, optimizer (its step counter)
    train/, validation/ TensorBoard event files (scalars, histograms, images)
    history.json        one row per logged step (train) and per round (validation)
    metrics.json        final test figures, speed and the flags used
    model.keras         the trained model (load after ``import custom_layers``)
    savedmodel/         with --export_savedmodel
    training_curves.png, filters.png, confusion_matrix.png, predictions.png
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import models
from datasets import pipeline
from datasets.splits import Dataset
from training import plots
from training.config import TrainConfig

SAMPLE_IMAGES = 16
CHECKPOINTS_KEPT = 3


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

    Keras' TensorBoard callback counts from zero in every process, so the
    step-indexed curves come from here, keyed by the optimizer's own step
    counter, which a restored checkpoint carries on.
    """

    def __init__(self, config: TrainConfig, train_writer, val_writer, history: List[Dict]):
        super().__init__()
        self.config = config
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

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
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
        loss, accuracy = float(logs["loss"]), float(logs["accuracy"])
        logging.info("step %d/%d  loss %.4f  accuracy %.4f  %.0f examples/s  lr %.2e  %s left",
                     step, self.config.steps, loss, accuracy, self.examples_per_second, lr,
                     _format_seconds(left))
        with self.train_writer.as_default(step=step):
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
        with self.val_writer.as_default(step=step):
            tf.summary.scalar("loss", val_loss)
            tf.summary.scalar("accuracy", val_accuracy)
        self.history.append({"step": step, "val_loss": val_loss, "val_accuracy": val_accuracy})


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
    first_conv = next(layer for layer in model.layers if len(layer.get_weights()) and
                      layer.get_weights()[0].ndim == 4)
    images = pipeline.as_float(data.test.images, SAMPLE_IMAGES)
    figures = {
        "training_curves": plots.training_curves(history),
        "filters": plots.filter_grid(first_conv.get_weights()[0]),
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
    """
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _run(config, load_data)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _run(config: TrainConfig, load_data) -> Dict[str, Any]:
    model_dir = config.resolved_model_dir()
    data = load_data(config.data_dir, config.validation_size, config.seed)
    model = build_compiled_model(config, data)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, "checkpoints"),
                                         max_to_keep=CHECKPOINTS_KEPT)
    if manager.latest_checkpoint:
        # Build the optimizer's slots first so that restore fills them in now.
        model.optimizer.build(model.trainable_variables)
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    step = int(model.optimizer.iterations.numpy())

    if config.mode == "eval":
        if not manager.latest_checkpoint:
            raise FileNotFoundError(f"no checkpoint in {model_dir}/checkpoints to evaluate")
        results = evaluate(model, data, config.batch_size)
        previous = _read_json(os.path.join(model_dir, "metrics.json"), {})
        metrics = {"test_accuracy": results["test_accuracy"], "test_loss": results["test_loss"],
                   "steps": step, "train_seconds": previous.get("train_seconds", 0.0)}
        logging.info("evaluated checkpoint %s", manager.latest_checkpoint)
        print(summary_line(metrics))
        return metrics

    os.makedirs(model_dir, exist_ok=True)
    if step:
        logging.info("Resuming from step %d (checkpoint %s)", step, manager.latest_checkpoint)
    history = [h for h in _read_json(os.path.join(model_dir, "history.json"), [])
               if h["step"] <= step]
    train_writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
    val_writer = tf.summary.create_file_writer(os.path.join(model_dir, "validation"))
    progress = ProgressLogger(config, train_writer, val_writer, history)
    tensorboard = keras.callbacks.TensorBoard(model_dir, histogram_freq=1, write_graph=False)
    validation = (pipeline.eval_dataset(data.validation, config.batch_size, data.normalization)
                  if len(data.validation.labels) else None)
    previous_seconds = _read_json(os.path.join(model_dir, "metrics.json"), {}).get("train_seconds", 0.0)

    while step < config.steps:
        round_index = step // config.eval_every
        round_steps = min(config.eval_every - step % config.eval_every, config.steps - step)
        # A fresh, reproducible shuffle per round: resuming replays the same rounds.
        train = pipeline.train_dataset(data.train, config.batch_size,
                                       seed=config.seed * 100003 + round_index,
                                       augment=config.augment, normalization=data.normalization)
        model.fit(train, steps_per_epoch=round_steps, initial_epoch=round_index,
                  epochs=round_index + 1, validation_data=validation,
                  callbacks=[progress, tensorboard], shuffle=False, verbose=0)
        step = int(model.optimizer.iterations.numpy())
        manager.save(checkpoint_number=step)
        _write_json(os.path.join(model_dir, "history.json"), history)
        logging.info("saved checkpoint at step %d", step)

    results = evaluate(model, data, config.batch_size)
    write_pictures(model, data, results, history, model_dir, val_writer, step)
    train_writer.flush()
    val_writer.flush()
    export(model, model_dir, config.export_savedmodel)
    metrics = {
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        "steps": step,
        "train_seconds": previous_seconds + progress.train_seconds,
        "examples_per_second": progress.examples_per_second,
        "input_normalization": None if data.normalization is None else {
            "mean": data.normalization[0].tolist(), "std": data.normalization[1].tolist()},
        "flags": config.to_dict(),
        "model_dir": model_dir,
    }
    _write_json(os.path.join(model_dir, "metrics.json"), metrics)
    print(summary_line(metrics))
    return metrics
