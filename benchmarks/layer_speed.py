"""Training speed of a model from custom layers vs stock Keras.

Both models train in the same process, on the same batches, with the same
optimizer; after a warm-up the two alternate in rounds so that machine
noise hits both alike. Prints examples/s per round, the medians and
custom/stock ratio. The reference MNIST net, and a residual CIFAR net with
batch normalization (ResNet-14: 3 stages of 2 blocks, 16/32/64 filters)::

    python -m benchmarks.layer_speed --data_dir=../shared/data/mnist
    python -m benchmarks.layer_speed --model=resnet14 --batch_size=128 --data_dir=/tmp/cifar

``--breakdown`` adds four models in which one layer type (convolutions,
pooling, dense, batch norm with ReLU) is custom and the rest stock, and prints what each costs in
ms per step over the all-stock model.
"""

from __future__ import annotations

from typing import Dict, Optional, Union

import keras
import numpy as np
import tensorflow as tf
from absl import flags

import models
from datasets import load_mnist
from datasets.cifar10 import load_cifar10
from benchmarks.common import alternating_rounds, train_step
from training import cli

def define_flags() -> None:
    flags.DEFINE_enum("model", "convnet", tuple(MODELS),
                      "convnet (MNIST, Adam) or a ResNet (CIFAR-10, SGD with momentum).")
    flags.DEFINE_string("data_dir", None, "MNIST or CIFAR-10 folder (as the training apps "
                        "take it); default: Keras cache.")
    flags.DEFINE_integer("batch_size", 50, "Examples per step.", lower_bound=1)
    flags.DEFINE_integer("steps", 50, "Steps per timed round.", lower_bound=1)
    flags.DEFINE_integer("rounds", 7, "Timed rounds per model (alternating).", lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 10, "Untimed steps per model first.", lower_bound=1)
    flags.DEFINE_boolean("jit_compile", False, "Compile both train steps with XLA.")
    flags.DEFINE_boolean("breakdown", False,
                         "Also time models with one layer type custom, the rest stock.")


# Builder and optimizer per model; the ResNets train on CIFAR-10.
MODELS = {
    "convnet": (lambda layers: models.build_convnet(layers=layers),
                lambda: keras.optimizers.Adam(1e-4)),
    **{f"resnet{d}": (lambda layers, d=d: models.build_resnet(layers=layers, depth=d),
                      lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
       for d in (14, 20)},
}

# One layer type custom at a time, for --breakdown.
BREAKDOWN = {
    "conv": models.mixed_layer_set("custom", "keras", "keras"),
    "pool": models.mixed_layer_set("keras", "custom", "keras"),
    "dense": models.mixed_layer_set("keras", "keras", "custom"),
    "norm": models.mixed_layer_set("keras", "keras", "keras", "custom"),
}


def make_train_step(layers: Union[str, models.LayerSet], jit_compile: bool, seed: int = 0,
                    model_name: str = "convnet"):
    """A compiled training step of ``model_name`` (a ``MODELS`` key) built from ``layers``."""
    keras.utils.set_random_seed(seed)
    build, make_optimizer = MODELS[model_name]
    return train_step(build(layers), make_optimizer(), jit_compile)


def benchmark(images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int,
              rounds: int, warmup_steps: int, jit_compile: bool,
              extra_models: Optional[Dict[str, models.LayerSet]] = None,
              model_name: str = "convnet") -> Dict[str, list]:
    """examples/s of each round for "custom", "keras" and ``extra_models``, alternating."""
    n_batches = len(images) // batch_size
    batches = [
        (tf.constant(images[i * batch_size:(i + 1) * batch_size]),
         tf.constant(labels[i * batch_size:(i + 1) * batch_size]))
        for i in range(min(n_batches, steps))
    ]
    variants = {"custom": "custom", "keras": "keras", **(extra_models or {})}
    steps_by_kind = {name: make_train_step(layers, jit_compile, model_name=model_name)
                     for name, layers in variants.items()}
    return alternating_rounds(steps_by_kind, batches, steps, rounds, warmup_steps, batch_size)


def run(flags_obj: flags.FlagValues) -> Dict[str, float]:
    """Times both models as the flags say, prints the table; returns the median speeds."""
    if flags_obj.model == "convnet":
        data = load_mnist(flags_obj.data_dir, validation_size=0)
    else:
        data = load_cifar10(flags_obj.data_dir, validation_size=0)
    images = data.train.images.astype(np.float32) / 255.0
    speeds = benchmark(images, data.train.labels, flags_obj.batch_size, flags_obj.steps,
                       flags_obj.rounds, flags_obj.warmup_steps, flags_obj.jit_compile,
                       BREAKDOWN if flags_obj.breakdown else None, flags_obj.model)
    for kind, values in speeds.items():
        print(f"{kind:7s} examples/s per round: " + " ".join(f"{v:.0f}" for v in values))
    custom, stock = (float(np.median(speeds[k])) for k in ("custom", "keras"))
    for name in BREAKDOWN if flags_obj.breakdown else ():
        extra_ms = 1e3 * flags_obj.batch_size * (1 / float(np.median(speeds[name])) - 1 / stock)
        print(f"custom {name} layers only: {extra_ms:+.2f} ms/step over all-stock")
    print(f"model={flags_obj.model} batch_size={flags_obj.batch_size} jit_compile={flags_obj.jit_compile} "
          f"custom={custom:.0f} keras={stock:.0f} examples/s  ratio custom/keras={custom / stock:.3f}")
    return {"custom": custom, "keras": stock}


if __name__ == "__main__":
    define_flags()
    cli.start(cli.main_for(run))
