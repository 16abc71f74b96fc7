"""The training run shared by train_mnist.py and train_cifar.py.

``run(config, load_data)`` trains (or evaluates) one model and returns its
metrics. Training goes in rounds of ``eval_every`` steps, each a
``model.fit`` call followed by validation and a checkpoint, so a run resumed
from its ``model_dir`` continues at the step it stopped.

What lands in ``model_dir`` (written only by the run holding its lock):
    checkpoints/              model + optimizer state (its step counter)
    train/, validation/, test/  TensorBoard event files, all against the global step
    metrics.json              the history (one row per logged step and per
                              validation), the flags, and at the end the test
                              figures, speed and wall time
    model.keras               the trained model (load after ``import custom_layers``)
    savedmodel/               with --export_savedmodel
    training_curves.png, filters.png, confusion_matrix.png, predictions.png
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any, Callable, Dict, Optional

import keras
import tensorflow as tf
from absl import logging

import models
from datasets import pipeline
from datasets.splits import Dataset, SplitError
from training import audit, checkpoints, distribute, outputs
from training.callbacks import ProgressLogger, StopSignals, mark_session_start
from training.config import TrainConfig
from training.errors import CheckpointError, Interrupted, UsageError
from training.averaging import LookaheadAveraging
from training.losses import make_loss
from training.optimizers import make_optimizer
from training.run_folder import RunFolder, capped_history, history_up_to

CHECKPOINTS_KEPT = 3
LoadData = Callable[[Optional[str], int, int], Dataset]


def run(config: TrainConfig, load_data: LoadData) -> Dict[str, Any]:
    """Trains or evaluates as ``config`` says; returns the metrics also in metrics.json.

    Args:
        config: the run's settings.
        load_data: ``load_data(data_dir, validation_size, seed) -> Dataset``.

    Raises:
        datasets.DataError: missing or corrupt data.
        UsageError: a flag that cannot work with this data or machine.
        RunFolderError, CheckpointError: --model_dir is unusable or its
            checkpoint does not belong to this model.
        NonFiniteLossError: the loss became NaN/Inf (nothing is saved after it).
        Interrupted: SIGINT/SIGTERM arrived; a checkpoint was saved first.
        StrategyError: the strategy cannot run here.
    """
    config.validate()
    clock = outputs.run_wall_clock()
    if config.num_cpu_devices > 1:
        distribute.configure_cpu_devices(config.num_cpu_devices)
    strategy = distribute.make_strategy(config.distribution_strategy)
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        data = _load_checked(config, load_data, strategy.num_replicas_in_sync)
        model_dir = config.resolved_model_dir()
        if config.mode == "eval":
            return _evaluate_checkpoint(config, data, strategy, model_dir, clock)
        chief = distribute.is_chief(strategy)
        # Every worker saves (saving is collective), but only the chief into model_dir.
        out_dir = model_dir if chief else os.path.join(model_dir, "workers", distribute.task_name(strategy))
        with RunFolder(out_dir).locked() as folder:
            return _train(config, data, strategy, folder, model_dir, chief, clock)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _load_checked(config: TrainConfig, load_data: LoadData, replicas: int) -> Dataset:
    """The data, with the flags that depend on its size checked against it."""
    try:
        data = load_data(config.data_dir, config.validation_size, config.seed)
    except SplitError as e:
        raise UsageError(f"--validation_size={config.validation_size} leaves no training "
                         f"examples ({e})") from None
    train_size = len(data.train.labels)
    if config.batch_size > train_size:
        raise UsageError(f"--batch_size={config.batch_size} is larger than the {train_size} "
                         "training examples left after --validation_size")
    if config.batch_size % replicas:
        raise UsageError(f"--batch_size={config.batch_size} does not split evenly over "
                         f"{replicas} replicas; use a multiple of {replicas}")
    return data


def build_model(config: TrainConfig, data: Dataset, layers: str, impl: str = "tf") -> keras.Model:
    return models.build_model(
        config.model,
        input_shape=data.train.images.shape[1:],
        num_classes=len(data.class_names),
        layers=layers,
        impl=impl,
        dropout_rate=config.dropout_rate,
    )


# Training images a model's ``prepare`` step sees (the whitening statistics):
# as the speed runs, a 5,000-image sample is plenty for a 12x12 covariance.
PREPARE_IMAGES = 5000


def steps_per_epoch(config: TrainConfig, data: Dataset) -> int:
    """Optimizer steps per pass over the training split (the last partial batch dropped)."""
    return max(len(data.train.labels) // config.batch_size, 1)


def prepare_model(config: TrainConfig, data: Dataset, model: keras.Model) -> None:
    """Runs the model's data-dependent set-up (``ModelSpec.prepare``), if it has one."""
    prepare = models.MODELS[config.model].prepare
    if prepare:
        module, function = prepare.split(":")
        images = pipeline.as_float(data.train.images, PREPARE_IMAGES, data.normalization)
        getattr(importlib.import_module(module), function)(model, images)


def build_compiled_model(config: TrainConfig, data: Dataset) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, data, config.layers, config.impl)
    prepare_model(config, data, model)
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch(config, data)),
        # The custom model's loss has a hand-written gradient too.
        loss=make_loss(config.layers, config.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile,
    )
    return model


def _restore(config: TrainConfig, model: keras.Model, checkpoint: tf.train.Checkpoint,
             model_dir: str, previous: Dict[str, Any]) -> Optional[str]:
    """Restores the latest checkpoint in ``model_dir``, if any; returns its path."""
    path = checkpoints.latest(os.path.join(model_dir, "checkpoints"))
    if path:
        checkpoints.restore(checkpoint, model, path, config, model_dir, previous.get("flags", {}))
    return path


def _totals_at(previous: Dict[str, Any], step: int) -> Dict[str, float]:
    """Train and wall seconds summed up to the checkpoint of ``step``.

    metrics.json is written before each checkpoint, so it may be one round
    ahead of the checkpoint a killed run resumes from; its ``saved_at`` keeps
    the totals of each recent checkpoint.
    """
    at = previous.get("saved_at", {}).get(str(step))
    source = at if at is not None else previous
    return {key: source.get(key, 0.0) for key in ("train_seconds", "wall_seconds")}


def _evaluate_checkpoint(config: TrainConfig, data: Dataset, strategy, model_dir: str,
                         clock: Callable[[], float]) -> Dict[str, Any]:
    previous = RunFolder(model_dir).read_metrics()
    with strategy.scope():
        model = build_compiled_model(config, data)
        checkpoint = checkpoints.make_checkpoint(model, config)
        path = _restore(config, model, checkpoint, model_dir, previous)
    if not path:
        raise CheckpointError(f"no checkpoint in {model_dir}/checkpoints to evaluate")
    results = outputs.evaluate(model, data, config.batch_size, config.tta)
    metrics = {"test_accuracy": results["test_accuracy"], "test_loss": results["test_loss"],
               "steps": int(model.optimizer.iterations.numpy()),
               "train_seconds": previous.get("train_seconds", 0.0),
               "wall_seconds": clock()}
    logging.info("evaluated checkpoint %s", path)
    print(outputs.summary_line(metrics))
    return metrics


def _writers(model_dir: str, step: int) -> Dict[str, Any]:
    """TensorBoard writers for the train, validation and test runs, restart-marked."""
    if step:
        time.sleep(1.0)  # a new second: sort after files of a process that just died
    for sub in ("train", "validation"):
        mark_session_start(os.path.join(model_dir, sub), step + 1)
    return {sub: tf.summary.create_file_writer(os.path.join(model_dir, sub))
            for sub in ("train", "validation", "test")}


def _train(config: TrainConfig, data: Dataset, strategy, folder: RunFolder, model_dir: str,
           chief: bool, clock: Callable[[], float]) -> Dict[str, Any]:
    previous = RunFolder(model_dir).read_metrics()
    # TensorFlow's manager reads (and prunes by) its state file when it starts:
    # ours is checked first, so that it can only ever delete checkpoints of this folder.
    checkpoints.read_state(folder.join("checkpoints"))
    with strategy.scope():
        model = build_compiled_model(config, data)
        averaging = None
        if config.lookahead_every:
            per_epoch = steps_per_epoch(config, data)
            averaging = LookaheadAveraging(model, config.lookahead_every,
                                           config.lookahead_start_epoch * per_epoch,
                                           config.steps)
        checkpoint = checkpoints.make_checkpoint(
            model, config, averaging=averaging.state if averaging else None)
        restored = _restore(config, model, checkpoint, model_dir, previous)
        manager = tf.train.CheckpointManager(checkpoint, folder.join("checkpoints"),
                                             max_to_keep=CHECKPOINTS_KEPT,
                                             checkpoint_name=checkpoints.PREFIX)
    step = int(model.optimizer.iterations.numpy())
    if step:
        logging.info("Resuming from step %d (checkpoint %s)", step, restored)
    history = history_up_to(previous, step)
    writers = _writers(model_dir, step) if chief else {}
    stop = StopSignals()
    progress = ProgressLogger(config, writers.get("train"), writers.get("validation"), history, stop,
                              lambda: manager.latest_checkpoint or restored)
    callbacks, auditor = [progress] + ([averaging] if averaging else []), None
    if config.audit_every and chief:
        with strategy.scope():
            twin = audit.stock_twin(lambda: build_model(config, data, "keras"), model)
        batches = iter(pipeline.train_dataset(data.train, config.batch_size, seed=config.seed + 1,
                                              augment=config.augment, normalization=data.normalization))
        auditor = audit.GradientAudit(twin, batches, config.audit_every, writers.get("train"), history)
        callbacks.append(auditor)
    totals = _totals_at(previous, step)
    saved_at = {k: v for k, v in previous.get("saved_at", {}).items() if int(k) <= step}
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        distribute.prepare_for_multi_worker(model, pipeline.eval_dataset(data.train, config.batch_size))

    def elapsed() -> Dict[str, float]:
        return {"train_seconds": totals["train_seconds"] + progress.train_seconds,
                "wall_seconds": totals["wall_seconds"] + clock()}

    def save(step: int) -> None:
        # The metrics first: a run killed between the two writes resumes from the
        # previous checkpoint with this round's history still on disk (the rows
        # past that checkpoint are dropped and logged again).
        now = elapsed()
        saved_at[str(step)] = now
        for old in sorted(saved_at, key=int)[:-(CHECKPOINTS_KEPT + 1)]:
            del saved_at[old]
        with folder.writing(f"the metrics and checkpoint of step {step}"):
            folder.write_json("metrics.json", {
                "status": "training", "steps": step, **now, "flags": config.to_dict(),
                "saved_at": saved_at, "history": capped_history(history)})
            manager.save(checkpoint_number=step)
        logging.info("saved checkpoint at step %d", step)

    with stop.installed():
        step = _train_rounds(config, data, model, callbacks, stop, step, save)
        if stop.signum is not None:
            raise Interrupted(stop.signum, step, manager.latest_checkpoint)

    results = outputs.evaluate(model, data, config.batch_size, config.tta)
    with folder.writing("the trained model"):
        outputs.export(model, folder, config.export_savedmodel and chief)
    metrics = {
        "status": "done",
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        # What the test-time augmentation adds: the same model on the plain images.
        "test_accuracy_without_tta": results["test_accuracy_without_tta"],
        "steps": step,
        **elapsed(),
        "examples_per_second": progress.examples_per_second,
        "input_normalization": None if data.normalization is None else {
            "mean": data.normalization[0].tolist(), "std": data.normalization[1].tolist()},
        "flags": config.to_dict(),
        "model_dir": model_dir,
        "replicas": strategy.num_replicas_in_sync,
        **({"gradient_audit_max": auditor.largest, "gradient_audit_seconds": auditor.seconds}
           if auditor else {}),
        "saved_at": saved_at,
        "history": capped_history(history),
    }
    with folder.writing("the final metrics and pictures"):
        if chief:
            outputs.write_test_scalars(writers["test"], metrics, step)
            outputs.write_pictures(model, data, results, history, folder, writers, step)
            for writer in writers.values():
                writer.flush()
        folder.write_json("metrics.json", metrics)
    print(outputs.summary_line(metrics))
    return metrics


def _train_rounds(config: TrainConfig, data: Dataset, model: keras.Model, callbacks: list,
                  stop: StopSignals, step: int, save: Callable[[int], None]) -> int:
    """``model.fit`` rounds of ``eval_every`` steps until ``config.steps`` or a stop signal."""
    validation = (pipeline.eval_dataset(data.validation, config.batch_size, data.normalization)
                  if len(data.validation.labels) else None)
    while step < config.steps and stop.signum is None:
        round_index = step // config.eval_every
        round_steps = min(config.eval_every - step % config.eval_every, config.steps - step)
        # Batches are a function of (seed, step): a resumed run continues the same stream.
        train = pipeline.train_dataset(data.train, config.batch_size, seed=config.seed,
                                       augment=config.augment, normalization=data.normalization,
                                       start_step=step, flip=config.flip,
                                       crop_padding=config.crop_padding, pad_mode=config.pad_mode)
        model.fit(train, steps_per_epoch=round_steps, initial_epoch=round_index,
                  epochs=round_index + 1,
                  validation_data=validation if stop.signum is None else None,
                  callbacks=callbacks, shuffle=False, verbose=0)
        step = int(model.optimizer.iterations.numpy())
        save(step)
    return step
