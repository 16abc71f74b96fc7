"""benchmarks/coverage.py on a quick subset: swapped models leave TensorFlow no gradient to write."""

import keras
import pytest

from benchmarks import coverage


@pytest.mark.parametrize("name", ["unet", "MobileNetV3Small", "volume_cnn"])
def test_swapped_models_backpropagate_only_through_hand_written_ops(name):
    builder = {**coverage.application_builders(), **coverage.EXTRA}[name]
    swapped, share, generated = coverage.coverage(builder())
    assert share == 1.0 and not generated, generated


def test_a_float64_training_step_of_mobilenetv3_equals_stocks(float64):
    # Dropout, batch norm in training mode, hard-swish built from bare graph ops, squeeze-excite.
    stock = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=10)
    output_error, gradient_error = coverage.training_step_errors(
        stock, coverage.custom_layers.swap_layers(stock))
    assert output_error <= 1e-12 and gradient_error <= 1e-6


def test_the_coverage_command_prints_each_model_and_refuses_unknown_ones(capsys):
    assert coverage.run(["unet"]) == {"unet": 1.0}
    assert "unet: 7/7 layers swapped, hand-written 100.0% of backward compute ops" in \
        capsys.readouterr().out
    with pytest.raises(coverage.app.UsageError, match="unknown --models \\['ResNet51'\\]"):
        coverage.run(["ResNet51"])
