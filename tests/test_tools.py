"""The gradient-check CLI, the benchmark and the example run and say the right things."""

import os
import subprocess
import sys

import numpy as np

import models
from benchmarks import layer_speed
from custom_layers import gradcheck
from custom_layers.ops import pointwise
from tests.data_factory import make_tiny_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gradcheck_all_errors_below_tolerance():
    results = gradcheck.run_all(seed=1)
    pairs = [e for grads in results.values() for errs in grads.values() for e in errs.values()]
    # conv ×4, depthwise ×3 (dx, dw, db each), max pool ×2, dense (3), relu ×2, softmax,
    # cross-entropy ×2, avg/global pools and dropout (5), batch norm ×3 (3 each),
    # gelu ×2, rescale, the shortcut, label-smoothed cross-entropy ×2; log_softmax, glu, the
    # elementwise rules (and elu with its alpha), prelu (2), layer norm (3), group norm (3),
    # the embedding lookup, the merge pairs ×5 (2 each), zero padding, nearest upsampling;
    # the unfolding, conv3d (3), max and average 3-D pooling.
    rules = sum(rule.keras_fn.__name__ == name for name, rule in pointwise.RULES.items())
    assert len(pairs) == 3 * (4 * 3 + 3 * 3 + 2 + 3 + 2 + 1 + 2 + 5 + 3 * 3 + 2 + 1 + 1 + 2
                              + 1 + 1 + rules + 1 + 2 + 3 + 3 + 1 + 5 * 2 + 1 + 1
                              + 1 + 3 + 2)
    for error, tolerance in pairs:
        assert error <= tolerance <= 1e-7


def test_gradcheck_cli_prints_textbook_lines():
    out = subprocess.run([sys.executable, "-m", "custom_layers.gradcheck"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "conv2d stride 1 same" in out.stdout and "dw  vs numeric:" in out.stdout
    assert out.stdout.strip().endswith("PASS")


def test_benchmark_measures_both_kinds():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(40, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, size=40).astype(np.int32)
    speeds = layer_speed.benchmark(images, labels, batch_size=8, steps=2, rounds=2,
                                   warmup_steps=1, jit_compile=False)
    assert set(speeds) == {"custom", "keras"}
    assert all(len(v) == 2 and min(v) > 0 for v in speeds.values())


def test_breakdown_models_make_one_layer_type_custom():
    stock_params = models.build_convnet(layers="keras").count_params()
    assert set(layer_speed.BREAKDOWN) == {"conv", "pool", "dense", "norm"}
    for name, kinds in layer_speed.BREAKDOWN.items():
        model = models.build_convnet(layers=kinds)
        custom = {type(layer).__name__ for layer in model.layers
                  if type(layer).__module__.startswith("custom_layers")}
        # The convnet has no batch norm: its "norm" variant is all stock.
        assert custom == {"conv": {"Conv2D"}, "pool": {"MaxPooling2D"},
                          "dense": {"Dense", "Dropout"}, "norm": set()}[name]
        assert model.count_params() == stock_params, name


def test_residual_example_trains(tmp_path):
    data_dir = make_tiny_mnist(str(tmp_path / "mnist"))
    out = subprocess.run(
        [sys.executable, "-m", "examples.residual_net", f"--data_dir={data_dir}", "--steps=2",
         "--batch_size=8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "test_accuracy=" in out.stdout


def test_example_and_benchmark_end_bad_data_in_one_line(tmp_path):
    for module in ("examples.residual_net", "benchmarks.layer_speed"):
        out = subprocess.run([sys.executable, "-m", module, f"--data_dir={tmp_path / 'nowhere'}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, (module, out.stderr[-2000:])
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("error: --data_dir")


def test_conv_shapes_times_both_layers_on_one_shape():
    from benchmarks import conv_shapes

    shape = conv_shapes.Shape(2, 6, 6, 8, 4, 3, strides=2)
    ratios = conv_shapes.time_pair(shape, rounds=1, min_seconds=0.0)
    assert set(ratios) == set(conv_shapes.PARTS) and all(r > 0 for r in ratios.values())


def test_network_benchmark_pairs_share_weights_and_outputs():
    from benchmarks import networks

    for name in ("vgg", "vit"):
        pair = networks.build_pair(name)
        images, _ = networks.batches_for(name, 1)[0]
        images = images[:4]
        np.testing.assert_allclose(pair["custom"](images), pair["keras"](images), rtol=1e-4,
                                   atol=1e-5)
    speeds = networks.time_network("mnist", steps=1, rounds=1)
    assert speeds["custom"] > 0 and speeds["keras"] > 0


def test_training_step_peak_memory_is_stocks():
    # Each backward recomputes or casts only once dy exists; computed right
    # after the forward (TensorFlow's executor may), every layer's copy would
    # be alive at once: ResNet-20 held 1.9x stock's peak that way.
    from benchmarks import networks

    peaks = networks.measure_memory("resnet20", "float32")
    assert peaks["custom"] <= 1.15 * peaks["keras"], peaks
