"""train_mnist.py end to end on tiny generated IDX files."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import custom_layers  # noqa: F401  (registers the layers for load_model)
import models
from datasets import load_mnist
from tests.data_factory import make_tiny_mnist
from training import outputs, trainer
from training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY = re.compile(r"^test_accuracy=\d\.\d{4} test_loss=\d+\.\d{4} steps=(\d+) train_seconds=\d+\.\d "
                     r"wall_seconds=(\d+\.\d)$",
                     re.M)
FAST = ["--batch_size=8", "--eval_every=3", "--log_every=2", "--validation_size=16"]


def train_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "train_mnist.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _tags(folder):
    tags = {"scalars": set(), "images": set(), "histograms": set()}
    for sub in ("train", "validation", "test"):
        acc = event_accumulator.EventAccumulator(os.path.join(folder, sub), size_guidance={"tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["tensors"]:
            kind = acc.Tensors(tag)[0].tensor_proto
            if "/histogram" in tag or (kind.tensor_shape.dim and len(kind.tensor_shape.dim) == 2
                                       and kind.tensor_shape.dim[1].size == 3):
                tags["histograms"].add(f"{sub}/{tag}")
            elif kind.dtype == tf.string.as_datatype_enum:
                tags["images"].add(f"{sub}/{tag}")
            else:
                tags["scalars"].add(f"{sub}/{tag}")
    return tags


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("mnist_run")
    data_dir = make_tiny_mnist(base / "data", n_train=80)
    model_dir = str(base / "model")
    result = train_cli("--steps=5", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                       "--export_savedmodel", *FAST)
    return data_dir, model_dir, result


def test_cli_trains_and_writes_everything(trained_run):
    data_dir, model_dir, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    match = SUMMARY.search(result.stdout)
    assert match and match.group(1) == "5"
    assert "step 4/5" in result.stderr and "examples/s" in result.stderr and "left" in result.stderr
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert metrics["steps"] == 5 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["examples_per_second"] > 0 and metrics["flags"]["layers"] == "custom"
    # The whole process, imports included, is longer than the steps alone.
    assert metrics["wall_seconds"] > metrics["train_seconds"] > 0
    assert abs(float(match.group(2)) - metrics["wall_seconds"]) < 0.1
    for name in ("training_curves.png", "filters.png", "confusion_matrix.png", "predictions.png",
                 "model.keras"):
        assert os.path.getsize(os.path.join(model_dir, name)) > 0, name
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("-5")


def test_tensorboard_has_scalars_histograms_and_images(trained_run):
    _, model_dir, _ = trained_run
    tags = _tags(model_dir)
    for tag in ("train/loss", "train/accuracy", "train/learning_rate", "train/examples_per_second",
                "validation/loss", "validation/accuracy"):
        assert tag in tags["scalars"], (tag, tags)
    for tag in ("test/loss", "test/accuracy"):
        assert tag in tags["scalars"], (tag, tags)
    assert tags["images"] == {"train/training_curves", "train/filters", "test/confusion_matrix",
                              "test/predictions"}, tags["images"]
    assert any("conv1" in t for t in tags["histograms"]), tags["histograms"]
    # Every curve is against the global step: no Keras per-round epoch_* duplicates.
    assert not any("epoch" in t or "vs_iterations" in t for kind in tags.values() for t in kind), tags


def test_exports_give_the_same_predictions(trained_run):
    data_dir, model_dir, _ = trained_run
    images = load_mnist(data_dir, 16).test.images[:8].astype(np.float32) / 255.0
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    served = tf.saved_model.load(os.path.join(model_dir, "savedmodel"))
    np.testing.assert_allclose(served.serve(tf.constant(images)).numpy(),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def test_resume_continues_at_saved_step_and_eval_mode(trained_run):
    data_dir, model_dir, _ = trained_run
    result = train_cli("--steps=8", f"--data_dir={data_dir}", f"--model_dir={model_dir}", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 5" in result.stderr
    assert SUMMARY.search(result.stdout).group(1) == "8"
    history = json.load(open(os.path.join(model_dir, "metrics.json")))["history"]
    train_steps = [h["step"] for h in history if "loss" in h]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 8

    result = train_cli("--mode=eval", f"--data_dir={data_dir}", f"--model_dir={model_dir}", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert SUMMARY.search(result.stdout).group(1) == "8"


def test_restored_weights_equal_saved_weights(tmp_path):
    data_dir = make_tiny_mnist(tmp_path / "data")
    config = TrainConfig(steps=3, batch_size=8, eval_every=3, log_every=1, validation_size=8,
                         data_dir=data_dir, model_dir=str(tmp_path / "m"), model="three_layer")
    trainer.run(config, load_mnist)
    saved = keras.models.load_model(str(tmp_path / "m" / "model.keras"))
    metrics = trainer.run(TrainConfig(**{**config.to_dict(), "mode": "eval"}), load_mnist)
    assert metrics["steps"] == 3
    restored = trainer.build_compiled_model(config, load_mnist(data_dir, 8))
    ckpt = tf.train.Checkpoint(model=restored)
    ckpt.restore(tf.train.latest_checkpoint(str(tmp_path / "m" / "checkpoints"))).expect_partial()
    for a, b in zip(saved.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_later_run_in_the_process_counts_wall_time_from_its_own_start(tmp_path):
    data_dir = make_tiny_mnist(tmp_path / "data")
    config = TrainConfig(steps=2, batch_size=8, eval_every=2, log_every=1, validation_size=8,
                         data_dir=data_dir, model="three_layer")
    trainer.run(dataclasses.replace(config, model_dir=str(tmp_path / "a")), load_mnist)
    before = outputs.process_wall_seconds()
    metrics = trainer.run(dataclasses.replace(config, model_dir=str(tmp_path / "b")), load_mnist)
    assert 0 < metrics["wall_seconds"] <= outputs.process_wall_seconds() - before


@pytest.mark.parametrize("flag,message", [
    ("--steps=-5", "--steps must be a positive integer"),
    ("--batch_size=0", "--batch_size must be a positive integer"),
    ("--dropout_rate=1.5", "--dropout_rate must be in [0, 1)"),
    ("--optimizer=adagrad", "value should be one of"),
    ("--layers=torch", "value should be one of"),
])
def test_bad_flags_exit_nonzero_with_one_line(flag, message):
    result = train_cli(flag, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_and_corrupt_data_exit_with_one_line(tmp_path):
    result = train_cli(f"--data_dir={tmp_path / 'nowhere'}", "--steps=1", timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not exist" in result.stderr
    folder = make_tiny_mnist(tmp_path / "bad")
    path = os.path.join(folder, "train-labels-idx1-ubyte.gz")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    result = train_cli(f"--data_dir={folder}", "--steps=1", f"--model_dir={tmp_path / 'm'}", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train-labels-idx1-ubyte.gz" in result.stderr


@pytest.mark.parametrize("layers", ["custom", "keras"])
def test_model_builders_parameter_counts(layers):
    assert models.build_convnet((28, 28, 1), layers=layers).count_params() == 3_274_634
    assert models.build_convnet((32, 32, 3), layers=layers).count_params() == 4_259_274
    assert models.build_three_layer((28, 28, 1), layers=layers).count_params() == 629_910
    weights = [w.shape for w in models.build_convnet(layers=layers).get_weights()]
    assert weights[0] == (5, 5, 1, 32) and weights[-1] == (10,)


def test_custom_and_stock_models_share_weights():
    custom, stock = models.build_convnet(layers="custom"), models.build_convnet(layers="keras")
    stock.set_weights(custom.get_weights())
    x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(custom.predict(x, verbose=0), stock.predict(x, verbose=0), atol=1e-5)
