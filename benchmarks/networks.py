"""Whole networks, custom vs stock: training speed in one process, and peak memory.

Each network is built twice with the same weights, from stock Keras layers
and from the hand-written ones, and both train on the same random batches
(speed does not depend on the pixel values) with the same optimizer,
alternating timed rounds after a warm-up. Networks:

* ``mnist``: the reference MNIST net (batch 50, Adam);
* ``resnet20``: the CIFAR ResNet-20 (batch 128, SGD);
* ``vgg``: a VGG-style CIFAR net, widths 64/128/128, two convolutions per
  block with batch norm, ReLU and max pooling (batch 256, SGD);
* ``resnet50``: ``keras.applications.ResNet50`` (weights=None, 64×64 inputs,
  batch 16, SGD), made custom by ``swap_layers``;
* ``vit``: a small CIFAR ViT (64 tokens of width 128, four blocks, batch
  128, Adam): layer norm, attention, GELU and the position embedding;
* ``mobilenet_v2``: ``keras.applications.MobileNetV2`` the same way (96×96
  inputs, batch 32): depthwise convolutions and ReLU6.

``--memory`` also runs each (network, layers, precision) in a fresh
process with TensorFlow's BFC allocator on the CPU, which keeps count, and
reports the peak bytes allocated during training steps after warm-up
(weights, optimizer slots, activations, gradients, temporaries)::

    python -m benchmarks.networks
    python -m benchmarks.networks --networks=vgg,resnet50 --precision=mixed_bfloat16 --memory
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable, Dict, List, Tuple

import keras
import numpy as np
import tensorflow as tf
from absl import flags

import custom_layers
import models
from benchmarks.common import alternating_rounds, require_known, train_step
from benchmarks.cpu import cpu_description
from benchmarks.conv_shapes import PRECISIONS
from training import cli


def _vgg(layers: str) -> keras.Model:
    lib = custom_layers if layers == "custom" else keras.layers
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for width in (64, 128, 128):
        for _ in range(2):
            x = lib.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = lib.BatchNormalization()(x)
            x = lib.ReLU()(x)
        x = lib.MaxPooling2D(2)(x)
    x = lib.GlobalAveragePooling2D()(x)
    outputs = lib.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _vit(layers: str) -> keras.Model:
    """A small CIFAR ViT: 4×4 patches (64 tokens, width 128) plus a learnt position
    embedding, four pre-norm blocks (4-head attention, GELU MLP of 256), mean pooling."""
    lib = custom_layers if layers == "custom" else keras.layers
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Reshape((64, 128))(lib.Conv2D(128, 4, strides=4)(inputs))
    # Token positions from x itself, so the embedding is a node of the model (trained).
    positions = keras.ops.cumsum(keras.ops.ones_like(x[..., 0], dtype="int32"), axis=1) - 1
    x = lib.Add()([x, lib.Embedding(64, 128)(positions)])
    for _ in range(4):
        h = lib.LayerNormalization()(x)
        x = lib.Add()([x, lib.MultiHeadAttention(4, 32)(h, h)])
        h = lib.Dense(128)(lib.Dense(256, activation="gelu")(lib.LayerNormalization()(x)))
        x = lib.Add()([x, h])
    x = lib.GlobalAveragePooling1D()(lib.LayerNormalization()(x))
    return keras.Model(inputs, lib.Dense(10, activation="softmax")(x))


def _application(constructor: Callable, shape: Tuple[int, ...]) -> Callable[[str], keras.Model]:
    """A builder of ``keras.applications`` model ``constructor`` (weights=None, 10
    classes), rebuilt by ``swap_layers`` for the custom kind."""
    def build(layers: str) -> keras.Model:
        model = constructor(weights=None, input_shape=shape, classes=10)
        if layers == "custom":
            return custom_layers.swap_layers(model, keep_unsupported=True)
        return model
    return build


def _sgd():
    return keras.optimizers.SGD(0.01, momentum=0.9)


# name: (builder(layers), input shape, batch size, optimizer factory)
NETWORKS: Dict[str, Tuple[Callable[[str], keras.Model], Tuple[int, ...], int, Callable]] = {
    "mnist": (lambda layers: models.build_convnet(layers=layers), (28, 28, 1), 50,
              lambda: keras.optimizers.Adam(1e-4)),
    "resnet20": (lambda layers: models.build_resnet(layers=layers, depth=20), (32, 32, 3), 128,
                 _sgd),
    "vgg": (_vgg, (32, 32, 3), 256, _sgd),
    "resnet50": (_application(keras.applications.ResNet50, (64, 64, 3)), (64, 64, 3), 16, _sgd),
    "vit": (_vit, (32, 32, 3), 128, lambda: keras.optimizers.Adam(1e-3)),
    "mobilenet_v2": (_application(keras.applications.MobileNetV2, (96, 96, 3)), (96, 96, 3), 32,
                     _sgd),
}
LAYERS = ("custom", "keras")


def define_flags() -> None:
    flags.DEFINE_list("networks", list(NETWORKS), f"Of: {', '.join(NETWORKS)}.")
    flags.DEFINE_list("precision", list(PRECISIONS), "float32 and/or mixed_bfloat16.")
    flags.DEFINE_integer("steps", 10, "Steps per timed round.", lower_bound=1)
    flags.DEFINE_integer("rounds", 5, "Timed rounds per model (alternating).", lower_bound=1)
    flags.DEFINE_boolean("memory", False, "Also measure peak memory, one process per model.")
    flags.DEFINE_string("memory_child", None, "Internal: network,layers,precision to measure.")


def build_pair(name: str) -> Dict[str, keras.Model]:
    """{"custom", "keras"}: the network from each layer set, with the same weights."""
    build = NETWORKS[name][0]
    keras.utils.set_random_seed(0)
    stock = build("keras")
    custom = build("custom")
    custom.set_weights(stock.get_weights())
    return {"custom": custom, "keras": stock}


def batches_for(name: str, count: int = 4) -> List[Tuple[tf.Tensor, tf.Tensor]]:
    _, shape, batch, _ = NETWORKS[name]
    rng = np.random.default_rng(0)
    return [(tf.constant(rng.uniform(size=(batch, *shape)).astype(np.float32)),
             tf.constant(rng.integers(0, 10, size=batch))) for _ in range(count)]


def time_network(name: str, steps: int, rounds: int) -> Dict[str, float]:
    """Median examples/s of custom and stock, alternating rounds."""
    pair = build_pair(name)
    batches = batches_for(name)
    train = {kind: train_step(model, NETWORKS[name][3]()) for kind, model in pair.items()}
    speeds = alternating_rounds(train, batches, steps, rounds, warmup_steps=3,
                                batch_size=NETWORKS[name][2])
    return {kind: float(np.median(v)) for kind, v in speeds.items()}


def memory_child(spec: str) -> None:
    """Trains one model; prints the peak bytes TensorFlow's allocator held during
    training steps after warm-up, in MB (run with the BFC CPU allocator, which counts)."""
    name, layers, precision = spec.split(",")
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = NETWORKS[name][0](layers)
    step = train_step(model, NETWORKS[name][3]())
    batches = batches_for(name, 2)
    for i in range(3):  # tracing, compiling and the optimizer's slots first
        step(*batches[i % 2]).numpy()
    tf.config.experimental.reset_memory_stats("CPU:0")
    for i in range(3):
        step(*batches[i % 2]).numpy()
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    print(json.dumps({"peak_mb": peak / 2**20}))


def measure_memory(name: str, precision: str) -> Dict[str, float]:
    """{layers: peak MB} of a training step, each in a fresh process."""
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
    out = {}
    for layers in LAYERS:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.networks", f"--memory_child={name},{layers},{precision}"],
            capture_output=True, text=True, timeout=1800, check=True, env=env)
        out[layers] = json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]
    return out


def run(flags_obj: flags.FlagValues):
    if flags_obj.memory_child:
        return memory_child(flags_obj.memory_child)
    require_known("networks", flags_obj.networks, list(NETWORKS))
    require_known("precision", flags_obj.precision, PRECISIONS)
    print(cpu_description())
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; examples/s (median of "
          f"{flags_obj.rounds} alternating rounds of {flags_obj.steps} steps)")
    rows = []
    for precision in flags_obj.precision:
        keras.mixed_precision.set_global_policy(precision)
        for name in flags_obj.networks:
            speed = time_network(name, flags_obj.steps, flags_obj.rounds)
            line = (f"{precision:15s} {name:9s} custom {speed['custom']:7.1f}  stock "
                    f"{speed['keras']:7.1f}  custom/stock {speed['custom'] / speed['keras']:.2f}")
            memory = measure_memory(name, precision) if flags_obj.memory else None
            if memory:
                line += (f"  step peak MB custom {memory['custom']:.0f} stock {memory['keras']:.0f}"
                         f" ({memory['custom'] / max(memory['keras'], 1):.2f}x)")
            print(line, flush=True)
            rows.append((precision, name, speed, memory))
    keras.mixed_precision.set_global_policy("float32")
    return rows


if __name__ == "__main__":
    define_flags()
    cli.start(cli.main_for(run))
