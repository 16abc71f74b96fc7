"""One convolution layer's training step, custom vs stock, over the shapes users meet.

For each shape a ``custom_layers`` layer and its stock twin (same weights)
are timed in one process, alternating rounds: the training step (forward,
dx and dw under a GradientTape in a ``tf.function``), and the forward with
dx or dw alone so the slow half is visible. Prints stock time / custom time (above 1: ours is
faster) per shape and precision, and the geometric mean::

    python -m benchmarks.conv_shapes
    python -m benchmarks.conv_shapes --precision=mixed_bfloat16 --shapes=resnet50_3x3,wide_2

The CPU's model and its vector/matrix flags are printed first: figures from
different CPUs do not compare.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags

import custom_layers
from benchmarks.common import require_known
from benchmarks.cpu import cpu_description
from training import cli

PRECISIONS = ("float32", "mixed_bfloat16")
PARTS = ("train", "dx", "dw")


class Shape(NamedTuple):
    """A layer and the input it is timed on: (N, H, W, C) -> F filters of K x K."""

    n: int
    h: int
    w: int
    c: int
    f: int
    k: int
    strides: int = 1
    kind: str = "conv"  # conv or depthwise
    dilation: int = 1
    groups: int = 1
    data_format: str = "channels_last"


SHAPES: Dict[str, Shape] = {
    "mnist_conv1": Shape(50, 28, 28, 1, 32, 5),
    "mnist_conv2": Shape(50, 14, 14, 32, 64, 5),
    "cifar_first": Shape(128, 32, 32, 3, 64, 3),
    "resnet20_stage1": Shape(128, 32, 32, 16, 16, 3),
    "resnet20_stage2": Shape(128, 16, 16, 32, 32, 3),
    "resnet20_stage3": Shape(128, 8, 8, 64, 64, 3),
    "wide_1": Shape(256, 16, 16, 64, 64, 3),
    "wide_2": Shape(256, 16, 16, 64, 128, 3),
    "wide_3": Shape(256, 8, 8, 128, 128, 3),
    "airbench_block1": Shape(256, 31, 31, 24, 64, 3),
    "airbench_block1_2": Shape(256, 15, 15, 64, 64, 3),
    "airbench_block2": Shape(256, 15, 15, 64, 128, 3),
    "airbench_block2_2": Shape(256, 7, 7, 128, 128, 3),
    "airbench_block3_2": Shape(256, 3, 3, 128, 128, 3),
    "resnet50_stem": Shape(16, 64, 64, 3, 64, 7, strides=2),
    "resnet50_3x3": Shape(16, 56, 56, 64, 64, 3),
    "resnet50_1x1_reduce": Shape(16, 56, 56, 256, 64, 1),
    "resnet50_1x1_expand": Shape(16, 56, 56, 64, 256, 1),
    "resnet50_conv4": Shape(16, 14, 14, 256, 256, 3),
    "resnet50_strided_3x3": Shape(16, 28, 28, 128, 128, 3, strides=2),
    "resnet50_strided_1x1": Shape(16, 56, 56, 256, 512, 1, strides=2),
    "dilated": Shape(32, 32, 32, 64, 64, 3, dilation=2),
    "grouped": Shape(32, 32, 32, 64, 64, 3, groups=4),
    "depthwise": Shape(32, 56, 56, 96, 96, 3, kind="depthwise"),
    "depthwise_strided": Shape(32, 56, 56, 96, 96, 3, strides=2, kind="depthwise"),
    "depthwise_7x7": Shape(64, 7, 7, 960, 960, 3, kind="depthwise"),
    "depthwise_multiplier": Shape(32, 28, 28, 64, 128, 5, kind="depthwise"),
    "channels_first": Shape(32, 16, 16, 64, 64, 3, data_format="channels_first"),
}


def define_flags() -> None:
    flags.DEFINE_list("shapes", list(SHAPES), f"Shapes to time, of: {', '.join(SHAPES)}.")
    flags.DEFINE_list("precision", list(PRECISIONS), "float32 and/or mixed_bfloat16.")
    flags.DEFINE_integer("rounds", 5, "Timed rounds per kind (alternating); the best counts.",
                         lower_bound=1)
    flags.DEFINE_float("round_seconds", 0.3, "Least time per round (calls repeat until it).",
                       lower_bound=0.0)
    flags.DEFINE_bool("use_bias", True, "Layers with a bias (Keras's default). Batch-norm "
                      "networks have none, and stock's bias gradient is slow on CPUs, so the "
                      "train ratio differs without it.")


def make_layers(shape: Shape, use_bias: bool = True):
    """(custom, stock) layers of ``shape``, built, with the same weights."""
    if shape.kind == "depthwise":
        kwargs = dict(kernel_size=shape.k, strides=shape.strides, padding="same",
                      depth_multiplier=shape.f // shape.c, use_bias=use_bias)
        pair = (custom_layers.DepthwiseConv2D(**kwargs), keras.layers.DepthwiseConv2D(**kwargs))
    else:
        kwargs = dict(filters=shape.f, kernel_size=shape.k, strides=shape.strides, padding="same",
                      dilation_rate=shape.dilation, groups=shape.groups,
                      data_format=shape.data_format, use_bias=use_bias)
        pair = (custom_layers.Conv2D(**kwargs), keras.layers.Conv2D(**kwargs))
    x = input_of(shape)
    for layer in pair:
        layer(x)
    pair[0].set_weights(pair[1].get_weights())
    return pair


def input_of(shape: Shape) -> tf.Tensor:
    dims = ((shape.n, shape.c, shape.h, shape.w) if shape.data_format == "channels_first"
            else (shape.n, shape.h, shape.w, shape.c))
    x = np.random.default_rng(0).normal(size=dims).astype(np.float32)
    return tf.constant(x, keras.mixed_precision.global_policy().compute_dtype)


def part_function(layer, part: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """A compiled step for ``part``: the forward and the training step's three gradients,
    or the forward and dx, or the forward and dw.

    The loss is returned too: otherwise TensorFlow prunes stock's forward from a
    step whose gradient (of a sum) does not need it, which no training step allows.
    """

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * 1e-3)
        targets = {"train": [x, *layer.trainable_weights], "dx": [x], "dw": [layer.kernel]}[part]
        grads = tape.gradient(loss, targets)
        return tf.add_n([loss] + [tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])

    return step


def _time_once(step, x, min_seconds: float) -> float:
    """Seconds per call, repeating the call for at least ``min_seconds``."""
    calls, start = 0, time.perf_counter()
    while True:
        step(x).numpy()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def time_pair(shape: Shape, rounds: int, min_seconds: float,
              use_bias: bool = True) -> Dict[str, float]:
    """{part: stock seconds / custom seconds} for ``shape`` under the current policy."""
    custom, stock = make_layers(shape, use_bias)
    x = input_of(shape)
    ratios = {}
    for part in PARTS:
        steps = [part_function(layer, part) for layer in (custom, stock)]
        for step in steps:  # trace, compile, warm up
            for _ in range(2):
                step(x).numpy()
        best = [math.inf, math.inf]
        for _ in range(rounds):
            for i, step in enumerate(steps):
                best[i] = min(best[i], _time_once(step, x, min_seconds))
        ratios[part] = best[1] / best[0]
    return ratios


def geometric_mean(values: Sequence[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def run(flags_obj: flags.FlagValues) -> Dict[str, Dict[str, Dict[str, float]]]:
    require_known("shapes", flags_obj.shapes, list(SHAPES))
    require_known("precision", flags_obj.precision, PRECISIONS)
    print(cpu_description())
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; stock time / custom time "
          "(above 1: hand-written is faster), best of each kind's rounds; "
          f"{'with' if flags_obj.use_bias else 'without'} a bias")
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for precision in flags_obj.precision:
        keras.mixed_precision.set_global_policy(precision)
        results[precision] = {}
        for name in flags_obj.shapes:
            try:
                ratios = time_pair(SHAPES[name], flags_obj.rounds, flags_obj.round_seconds,
                                   flags_obj.use_bias)
            except tf.errors.UnimplementedError as error:
                # Stock's CPU Conv2D refuses NCHW unless oneDNN supports it on this CPU.
                print(f"{precision:15s} {name:22s} stock cannot run it here: "
                      f"{error.message.splitlines()[0][:100]}", flush=True)
                continue
            results[precision][name] = ratios
            print(f"{precision:15s} {name:22s} " + "  ".join(f"{p} {r:5.2f}" for p, r in ratios.items()),
                  flush=True)
    keras.mixed_precision.set_global_policy("float32")
    header = "| layer | " + " | ".join(f"{p} {part}" for p in flags_obj.precision for part in PARTS) + " |"
    lines: List[str] = [header, "|" + "---|" * (1 + len(PARTS) * len(flags_obj.precision))]
    for name in flags_obj.shapes:
        cells = [f"{results[p][name][part]:.2f}" if name in results[p] else "n/a"
                 for p in flags_obj.precision for part in PARTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [f"{geometric_mean([r[part] for r in results[p].values()]):.2f}"
             for p in flags_obj.precision for part in PARTS]
    lines.append("| geometric mean | " + " | ".join(means) + " |")
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    define_flags()
    cli.start(cli.main_for(run))
