"""ResNet-20/32 for CIFAR-10: structure, custom == stock training step, the CLI preset."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
import models
from custom_layers.gradcheck import rel_error
from custom_layers import ZeroPadShortcut
from tests.data_factory import write_cifar_archive
from training import config as train_config
from training.optimizers import make_optimizer
from tests.conftest import skip_unless_convolutions_run_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Layer types that hold arithmetic; in the custom model each must be hand-written.
MATHS = ("Conv2D", "BatchNormalization", "ReLU", "GlobalAveragePooling2D", "Dense")


@pytest.mark.parametrize("depth,params", [(20, 271_098), (32, 466_426)])
@pytest.mark.parametrize("kind", ["custom", "keras"])
def test_parameter_count_and_output_shape(depth, params, kind):
    model = models.build_resnet(layers=kind, depth=depth)
    assert model.count_params() == params
    assert model.output_shape == (None, 10)
    convs = [l for l in model.layers if type(l).__name__ == "Conv2D"]
    assert len(convs) == depth - 1  # plus the dense layer: depth weighted layers
    assert len([l for l in model.layers if type(l).__name__ == "BatchNormalization"]) == depth - 1
    module = "custom_layers" if kind == "custom" else "keras"
    for layer in model.layers:
        if type(layer).__name__ in MATHS:
            assert type(layer).__module__.startswith(module), (layer.name, type(layer))
    y = model(np.zeros((2, 32, 32, 3), np.float32))
    assert y.shape == (2, 10)


def test_custom_and_stock_resnet_have_the_same_weight_shapes():
    custom = models.build_resnet(layers="custom")
    stock = models.build_resnet(layers="keras")
    assert [w.shape for w in custom.weights] == [w.shape for w in stock.weights]
    assert [w.path for w in custom.weights] == [w.path for w in stock.weights]


@pytest.mark.parametrize("depth", [0, 19, 21, 8.0, "20"])
def test_bad_depth_is_refused(depth):
    with pytest.raises(ValueError, match="depth must be 6n"):
        models.build_resnet(depth=depth)


def test_zero_pad_shortcut_subsamples_and_pads():
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    y = ZeroPadShortcut(8, 2)(x).numpy()
    assert y.shape == (2, 3, 3, 8)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    assert not y[..., 3:].any()
    with pytest.raises(ValueError, match="filters must be a positive integer"):
        ZeroPadShortcut(0, 2)


def test_one_training_step_custom_equals_stock(float64):
    """Same weights, same batch, float64: loss, every gradient and the BN statistics."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(8, 32, 32, 3)))
    labels = tf.constant(rng.integers(0, 10, size=8))
    keras.utils.set_random_seed(1)
    stock = models.build_resnet(layers="keras", output_dtype="float64")
    custom = models.build_resnet(layers="custom", output_dtype="float64")
    custom.set_weights(stock.get_weights())
    results = []
    for model, loss_fn in ((custom, custom_layers.SparseCategoricalCrossentropy()),
                           (stock, keras.losses.SparseCategoricalCrossentropy())):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((loss.numpy(), [g.numpy() for g in grads],
                        [w.numpy() for w in model.non_trainable_weights]))
    (loss_c, grads_c, stats_c), (loss_s, grads_s, stats_s) = results
    assert loss_c.dtype == np.float64
    assert abs(loss_c - loss_s) <= 1e-12 * abs(loss_s)
    assert len(grads_c) == len(grads_s) == 59  # 19 kernels, 19 gammas and betas, dense
    worst = max(rel_error(a, b) for a, b in zip(grads_c, grads_s))
    assert worst <= 1e-9, worst
    assert max(rel_error(a, b) for a, b in zip(stats_c, stats_s)) <= 1e-12


def test_weight_decay_shrinks_kernels_only():
    config = train_config.TrainConfig(optimizer="momentum", learning_rate=0.1, weight_decay=0.01,
                                      lr_schedule="constant")
    model = models.build_resnet(layers="custom", depth=8)
    optimizer = make_optimizer(config)
    before = {w.path: w.numpy() for w in model.trainable_variables}
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    for v in model.trainable_variables:
        factor = 1 - 0.1 * 0.01 if v.name == "kernel" else 1.0
        np.testing.assert_allclose(v.numpy(), before[v.path] * factor, rtol=1e-6,
                                   err_msg=v.path)


class _Flag:
    def __init__(self, value, present):
        self.value, self.present = value, present


def test_model_preset_replaces_the_defaults_but_not_given_flags():
    defaults = train_config.CIFAR10.to_dict()
    given = {"model": "resnet32", "steps": 7}
    values = {name: _Flag(given.get(name, value), name in given) for name, value in defaults.items()}
    run = train_config.from_flags(train_config.CIFAR10, values, train_config.CIFAR10_MODEL_PRESETS)
    assert run.model == "resnet32" and run.steps == 7
    assert (run.optimizer, run.weight_decay, run.dropout_rate) == ("momentum", 5e-3, 0.0)
    convnet = {name: _Flag(value, False) for name, value in defaults.items()}
    assert train_config.from_flags(train_config.CIFAR10, convnet,
                                   train_config.CIFAR10_MODEL_PRESETS) == train_config.CIFAR10


def _run_cli(tmp_path, *flags_, timeout=600):
    archive = write_cifar_archive(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "train_cifar.py", f"--data_dir={archive}",
         f"--model_dir={tmp_path / 'model'}", "--steps=3", "--batch_size=8", "--eval_every=3",
         "--log_every=1", "--validation_size=20", *flags_],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def test_cli_resnet20_preset_with_mixed_precision_trains_saves_and_reloads(tmp_path):
    # One run for three things (each costs an XLA compile): the preset, XLA, float16.
    result = _run_cli(tmp_path, "--model=resnet20", "--mixed_precision")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^test_accuracy=\d\.\d{4} .*steps=3 ", result.stdout, re.M)
    model_dir = tmp_path / "model"
    metrics = json.load(open(model_dir / "metrics.json"))
    flags_ = metrics["flags"]
    # The preset, with the flags given on the command line on top.
    assert (flags_["optimizer"], flags_["learning_rate"], flags_["weight_decay"]) == ("momentum", 0.1, 5e-3)
    assert (flags_["dropout_rate"], flags_["jit_compile"], flags_["augment"]) == (0.0, True, True)
    assert (flags_["steps"], flags_["batch_size"], flags_["precision"]) == (3, 8, "mixed_float16")
    assert np.isfinite(metrics["test_loss"])
    model = keras.models.load_model(model_dir / "model.keras")
    assert type(model.get_layer("stage2_block1_1_bn")) is custom_layers.BatchNormalization
    assert model.count_params() == 271_098


def test_cli_resnet20_mirrored_on_two_cpu_devices(tmp_path):
    result = _run_cli(tmp_path, "--model=resnet20", "--distribution_strategy=mirrored",
                      "--num_cpu_devices=2", "--nojit_compile")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "model" / "metrics.json"))
    assert metrics["replicas"] == 2 and np.isfinite(metrics["test_loss"])


def test_cli_resnet_refuses_dropout(tmp_path):
    result = _run_cli(tmp_path, "--model=resnet20", "--dropout_rate=0.3", timeout=120)
    assert result.returncode == 2
    assert "--model=resnet20 has no dropout" in result.stderr


def _resnet_gradients(layers, policy, x, labels, weights):
    keras.mixed_precision.set_global_policy(policy)
    try:
        kwargs = {"output_dtype": "float64"} if policy == "float64" else {}
        model = models.build_resnet(layers=layers, **kwargs)
        model.set_weights(weights)
        loss_fn = (custom_layers.SparseCategoricalCrossentropy() if layers == "custom"
                   else keras.losses.SparseCategoricalCrossentropy())
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(tf.cast(x, model.compute_dtype), training=True))
        grads = tape.gradient(loss, model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(g.dtype == model.variable_dtype for g in grads)
    return [g.numpy().astype(np.float64) for g in grads]


def test_bfloat16_training_step_gradients_are_as_exact_as_stock():
    """Under mixed_bfloat16 (bfloat16 products in every backward) a ResNet-20
    step's gradients are as close to the exact (float64) ones as stock's."""
    skip_unless_convolutions_run_in("bfloat16")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(16, 32, 32, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, 10, size=16))
    keras.utils.set_random_seed(1)
    weights = models.build_resnet(layers="keras").get_weights()
    exact = _resnet_gradients("keras", "float64", x, labels, weights)
    errors = {}
    for layers in ("custom", "keras"):
        grads = _resnet_gradients(layers, "mixed_bfloat16", x, labels, weights)
        errors[layers] = np.array([np.linalg.norm(g - e) / np.linalg.norm(e)
                                   for g, e in zip(grads, exact)])
    assert len(errors["custom"]) == 59
    # bfloat16's 8-bit mantissa through 20 layers: stock itself is off by
    # ~25% normwise (median) at initialisation; ours must not be worse.
    assert np.median(errors["custom"]) <= 1.2 * np.median(errors["keras"]), errors
    assert errors["custom"].max() <= 1.2 * errors["keras"].max(), errors
