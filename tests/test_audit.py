"""The live gradient audit and --impl=numpy, through the training app."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import custom_layers
from tests.data_factory import make_tiny_mnist
from training.audit import GradientAudit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--batch_size=8", "--validation_size=16", "--log_every=2", "--eval_every=3"]


@keras.saving.register_keras_serializable(package="tests")
class DoubledGradientDense(custom_layers.Dense):
    """A Dense whose backward is wrong by a factor of two: what the audit must catch."""

    def call(self, inputs):
        @tf.custom_gradient
        def doubled(x):
            return tf.identity(x), lambda dy: 2.0 * dy
        return doubled(super().call(inputs))


def _net(dense_cls):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), custom_layers.Dense(5, activation="relu", name="a"),
                             dense_cls(3, activation="softmax", name="b")])


def _audit(model):
    stock = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu", name="a"),
                              keras.layers.Dense(3, activation="softmax", name="b")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    batches = iter([(tf.constant(rng.normal(size=(16, 6)), tf.float32),
                     tf.constant(rng.integers(0, 3, 16)))] * 2)
    auditor = GradientAudit(stock, batches, every=1, writer=None, history=[])
    auditor.set_model(model)
    return auditor.audit(step=1)


def test_audit_agrees_on_correct_layers_and_catches_a_wrong_backward():
    good = _audit(_net(custom_layers.Dense))
    assert set(good) == {"a/kernel", "a/bias", "b/kernel", "b/bias"}
    assert max(good.values()) < 1e-5
    bad = _audit(_net(DoubledGradientDense))
    # Doubling dy at b's output doubles every weight gradient below it:
    # |2g - g| / max(|2g|, |g|) = 0.5.
    assert all(0.45 < bad[name] < 0.55 for name in bad), bad


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("data"), n_train=80)


def test_audit_every_writes_scalars_below_tolerance(data, tmp_path):
    model_dir = tmp_path / "m"
    result = subprocess.run([sys.executable, "train_mnist.py", *TINY, f"--data_dir={data}",
                             f"--model_dir={model_dir}", "--steps=6", "--audit_every=3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    acc = event_accumulator.EventAccumulator(str(model_dir / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = [t for t in acc.Tags()["tensors"] if t.startswith("gradient_audit/")]
    assert set(tags) == {f"gradient_audit/{layer}/{w}" for layer in ("conv1", "conv2", "fc1", "logits")
                         for w in ("kernel", "bias")}
    for tag in tags:
        events = acc.Tensors(tag)
        assert [e.step for e in events] == [3, 6]
        assert all(0 <= float(tf.make_ndarray(e.tensor_proto)) < 1e-4 for e in events)
    metrics = json.load(open(model_dir / "metrics.json"))
    assert 0 < metrics["gradient_audit_max"] < 1e-4
    assert 0 < metrics["gradient_audit_seconds"] < metrics["train_seconds"]


def test_impl_numpy_trains_through_the_app(data, tmp_path):
    result = subprocess.run([sys.executable, "train_mnist.py", *TINY, f"--data_dir={data}",
                             f"--model_dir={tmp_path / 'm'}", "--steps=3", "--impl=numpy",
                             "--model=three_layer"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "m" / "metrics.json"))
    assert metrics["flags"]["impl"] == "numpy" and metrics["steps"] == 3
    first, last = metrics["history"][0], [h for h in metrics["history"] if "loss" in h][-1]
    assert np.isfinite(last["loss"]) and first["step"] < last["step"]


@pytest.mark.parametrize("flags_,message", [
    (["--impl=numpy", "--layers=keras"], "--impl=numpy cannot be combined with --layers=keras"),
    (["--impl=numpy", "--jit_compile"], "--impl=numpy cannot be combined with --jit_compile"),
    (["--audit_every=5", "--layers=keras"], "--audit_every checks the custom layers' gradients"),
])
def test_flag_combinations_that_cannot_work(data, tmp_path, flags_, message):
    result = subprocess.run([sys.executable, "train_mnist.py", *TINY, f"--data_dir={data}",
                             f"--model_dir={tmp_path / 'm'}", "--steps=3", *flags_],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: " + message)
