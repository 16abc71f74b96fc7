"""The whitened VGG (the CIFAR-10 speed-run network): whitening, structure, custom == stock, CLI."""

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
from models.whitened_vgg import dirac_, set_whitening, whitening_kernel
from tests.data_factory import write_cifar_folder
from tests.graph_walk import tf_generated_gradients
from training import config as train_config
from training.losses import make_loss
from training.optimizers import make_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = (8, 16, 16)


def _correlated_images(rng, n=64):
    """Images whose neighbouring pixels and channels are strongly correlated, as photos are."""
    noise = rng.normal(size=(n, 33, 33, 1)) + 0.3 * rng.normal(size=(n, 33, 33, 3))
    return (np.cumsum(np.cumsum(noise, axis=1), axis=2)[:, 1:, 1:] / 10).astype(np.float32)


def test_whitening_kernel_whitens_the_patches():
    images = _correlated_images(np.random.default_rng(0))
    kernel = whitening_kernel(images)
    assert kernel.shape == (2, 2, 3, 24)
    np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])
    out = tf.nn.conv2d(images, kernel[..., :12], 1, "VALID").numpy().reshape(-1, 12)
    covariance = out.T @ out / len(out)
    # Identity up to each direction's λ / (λ + ε): the directions with λ >> ε are white.
    patches = tf.image.extract_patches(images, [1, 2, 2, 1], [1] * 4, [1] * 4, "VALID")
    flat = patches.numpy().reshape(-1, 12).astype(np.float64)
    eigenvalues = np.sort(np.linalg.eigvalsh(flat.T @ flat / len(flat)))[::-1]
    expected = eigenvalues / (eigenvalues + 5e-4)
    np.testing.assert_allclose(np.diag(covariance), expected, atol=2e-3)
    assert np.abs(covariance - np.diag(np.diag(covariance))).max() <= 2e-3
    assert eigenvalues[0] / eigenvalues[-1] > 100  # the input was far from white


def test_whitening_refuses_images_it_cannot_read():
    with pytest.raises(ValueError, match="whitening needs"):
        whitening_kernel(np.zeros((4, 1, 5, 3)))


@pytest.mark.parametrize("kind", ["custom", "keras"])
@pytest.mark.parametrize("model,params", [("whitened_vgg", 570_296), ("whitened_vgg_wide", 1_973_944)])
def test_structure_parameter_count_and_frozen_whitening(kind, model, params):
    net = models.build_model(model, layers=kind)
    assert net.count_params() == params
    assert net.output_shape == (None, 10)
    whiten = net.get_layer("whiten")
    assert [v.path for v in whiten.trainable_weights] == ["whiten/bias"]
    bns = [layer for layer in net.layers if "bn" in layer.name]
    assert len(bns) == 6 and all(not bn.scale and bn.epsilon == 1e-12 for bn in bns)


def test_convolutions_start_as_the_identity_on_their_first_channels():
    net = models.build_model("whitened_vgg", widths=SMALL)
    conv = net.get_layer("block2_conv1")  # 8 -> 16 channels
    x = tf.random.normal([2, 5, 5, 8])
    y = conv(x).numpy()
    np.testing.assert_allclose(y[..., :8], x.numpy(), atol=1e-6)
    layer = keras.layers.Conv2D(4, 3)
    layer.build((None, 5, 5, 6))  # more inputs than filters: the first 4 pass
    dirac_(layer)
    x = tf.random.normal([1, 5, 5, 6])
    np.testing.assert_allclose(layer(x).numpy(), x.numpy()[:, 1:-1, 1:-1, :4], atol=1e-6)


def test_one_training_step_custom_equals_stock(float64):
    """Same weights and batch, the preset's optimizer and smoothed loss: loss, gradients,
    statistics and the weights after the step agree to float64 rounding."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 32, 32, 3))
    x, labels = tf.constant(images[:6]), tf.constant(rng.integers(0, 10, size=6))
    config = train_config.CIFAR10_WHITENED
    keras.utils.set_random_seed(1)
    stock = models.build_model("whitened_vgg", layers="keras", widths=SMALL, output_dtype="float64")
    custom = models.build_model("whitened_vgg", layers="custom", widths=SMALL, output_dtype="float64")
    set_whitening(stock, images)
    custom.set_weights(stock.get_weights())
    results = []
    for model, kind in ((custom, "custom"), (stock, "keras")):
        optimizer = make_optimizer(config, steps_per_epoch=1)
        loss_fn = make_loss(kind, config.label_smoothing)
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        results.append((loss.numpy(), [g.numpy() for g in grads],
                        [w.numpy() for w in model.weights]))
    (loss_c, grads_c, after_c), (loss_s, grads_s, after_s) = results
    # Stock's GELU rounds its constant 1/√2 to float32 (tf.nn.gelu), a function ~5e-9
    # off the exact one in float64: the bound is that, not float64 rounding.
    assert loss_c.dtype == np.float64 and abs(loss_c - loss_s) <= 1e-8 * abs(loss_s)
    assert len(grads_c) == 14  # 6 kernels, 6 BN biases, whitening bias, head
    assert max(rel_error(a, b) for a, b in zip(grads_c, grads_s)) <= 1e-7
    assert max(rel_error(a, b) for a, b in zip(after_c, after_s)) <= 1e-7


def test_training_step_gradients_are_all_hand_written_but_reshapes():
    net = models.build_model("whitened_vgg", widths=SMALL)
    generated = tf_generated_gradients(net, make_loss("custom", 0.2), [2, 32, 32, 3])
    assert set().union(*generated.values()) <= {"Reshape", "Shape", "Const"}, generated


def _run_cli(tmp_path, *flags_):
    data = write_cifar_folder(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "train_cifar.py", "--model=whitened_vgg", f"--data_dir={data}",
         f"--model_dir={tmp_path / 'model'}", "--steps=3", "--batch_size=16", "--log_every=1",
         "--lookahead_start_epoch=0", "--lookahead_every=2", "--whiten_bias_epochs=1", *flags_],
        cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("kind", ["custom", "keras"])
def test_cli_preset_trains_with_either_layer_kind(tmp_path, kind):
    result = _run_cli(tmp_path, f"--layers={kind}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^test_accuracy=\d\.\d{4} .*steps=3 ", result.stdout, re.M)
    flags_ = json.load(open(tmp_path / "model" / "metrics.json"))["flags"]
    assert (flags_["batch_size"], flags_["validation_size"], flags_["tta"]) == (16, 0, "mirror_translate")
    assert (flags_["optimizer"], flags_["momentum"], flags_["label_smoothing"]) == ("momentum", 0.85, 0.2)
    assert (flags_["flip"], flags_["crop_padding"], flags_["pad_mode"]) == ("alternating", 2, "reflect")
    model = keras.models.load_model(tmp_path / "model" / "model.keras")
    whiten = model.get_layer("whiten").kernel.numpy()
    assert np.abs(whiten).max() > 0  # set from the training images, not the zero initialiser
    expected = custom_layers.Conv2D if kind == "custom" else keras.layers.Conv2D
    assert type(model.get_layer("block1_conv1")) is expected


def test_cli_refuses_dropout_and_whitening_epochs_elsewhere(tmp_path):
    result = _run_cli(tmp_path, "--dropout_rate=0.2")
    assert result.returncode == 2 and "has no dropout" in result.stderr
    result = _run_cli(tmp_path, "--model=resnet20")
    assert result.returncode == 2 and "--whiten_bias_epochs applies to the whitened models" in result.stderr
