"""Each fact in one place: the model registry that the flags, trainer and builders read."""

import subprocess
import sys

import pytest

import custom_layers
import models
from models import registry
from training import config
from training.errors import UsageError

TF_FREE = ["models", "models.registry", "training.config", "training.cli"]


def test_the_apps_flag_modules_do_not_load_tensorflow():
    # --help answers before TensorFlow loads only if these stay free of it.
    script = ("import sys\n" + "".join(f"import {m}\n" for m in TF_FREE)
              + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_flags_presets_and_builders_read_one_registry():
    assert config.MODELS == registry.MODEL_NAMES == tuple(registry.MODELS)
    with_presets = set(registry.names_in_family("resnet") + registry.names_in_family("whitened"))
    assert set(config.CIFAR10_MODEL_PRESETS) == with_presets
    assert set(config.MNIST_MODEL_PRESETS) == with_presets
    # The library's own list of backward implementations, repeated TF-free here.
    assert registry.IMPLS == custom_layers.ops.IMPLS
    assert registry.LAYER_KINDS == ("custom", "keras")


@pytest.mark.parametrize("name", registry.MODEL_NAMES)
def test_every_registered_model_builds_and_its_rules_match_its_builder(name):
    spec = registry.spec(name)
    model = models.build_model(name, input_shape=(16, 16, 3), num_classes=4)
    assert model.output_shape == (None, 4)
    base = config.TrainConfig(model=name, dropout_rate=0.0)
    base.validate()
    # The trainer's rule and the builder's own check say the same thing.
    if not spec.has_dropout:
        with pytest.raises(UsageError, match="has no dropout"):
            config.TrainConfig(model=name, dropout_rate=0.5).validate()
        with pytest.raises(ValueError, match="dropout"):
            models.build_model(name, dropout_rate=0.5)
    if not spec.numpy_backward:
        with pytest.raises(UsageError, match="needs --impl=tf"):
            config.TrainConfig(model=name, dropout_rate=0.0, impl="numpy").validate()
        with pytest.raises(ValueError, match="impl"):
            models.build_model(name, impl="numpy")


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=r"model must be one of \('convnet'"):
        models.build_model("vgg")


def test_precision_flag_and_its_older_spelling():
    from absl import flags

    def parse(*args):
        values = flags.FlagValues()
        config.define_flags(config.MNIST, values)
        values(["prog", *args])
        return config.from_flags(config.MNIST, values)

    assert parse().precision == "float32"
    assert parse("--precision=mixed_bfloat16").precision == "mixed_bfloat16"
    assert parse("--mixed_precision").precision == "mixed_float16"
    with pytest.raises(UsageError, match="cannot be combined with --precision=mixed_bfloat16"):
        parse("--mixed_precision", "--precision=mixed_bfloat16")
    with pytest.raises(flags.IllegalFlagValueError):
        parse("--precision=float16")
