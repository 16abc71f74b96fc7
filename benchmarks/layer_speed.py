"""Training speed of the reference MNIST model: custom layers vs stock Keras.

Both models train in the same process, on the same MNIST batches, with the
same optimizer; after a warm-up the two alternate in rounds so that machine
noise hits both alike. Prints examples/s per round, the medians and
custom/stock ratio::

    python -m benchmarks.layer_speed --data_dir=../shared/data/mnist

``--breakdown`` adds three models in which one layer type (convolutions,
pooling, dense) is custom and the rest stock, and prints what each costs in
ms per step over the all-stock model.
"""

from __future__ import annotations

import time
from typing import Dict, Optional, Union

import keras
import numpy as np
import tensorflow as tf
from absl import flags

import models
from datasets import load_mnist
from training import cli

def define_flags() -> None:
    flags.DEFINE_string("data_dir", None, "MNIST folder (see train_mnist.py); default: Keras cache.")
    flags.DEFINE_integer("batch_size", 50, "Examples per step.", lower_bound=1)
    flags.DEFINE_integer("steps", 50, "Steps per timed round.", lower_bound=1)
    flags.DEFINE_integer("rounds", 7, "Timed rounds per model (alternating).", lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 10, "Untimed steps per model first.", lower_bound=1)
    flags.DEFINE_boolean("jit_compile", False, "Compile both train steps with XLA.")
    flags.DEFINE_boolean("breakdown", False,
                         "Also time models with one layer type custom, the rest stock.")


# One layer type custom at a time, for --breakdown.
BREAKDOWN = {
    "conv": models.mixed_layer_set("custom", "keras", "keras"),
    "pool": models.mixed_layer_set("keras", "custom", "keras"),
    "dense": models.mixed_layer_set("keras", "keras", "custom"),
}


def make_train_step(layers: Union[str, models.LayerSet], jit_compile: bool, seed: int = 0):
    """A compiled Adam training step of the reference convnet built from ``layers``."""
    keras.utils.set_random_seed(seed)
    model = models.build_convnet(layers=layers)
    optimizer = keras.optimizers.Adam(1e-4)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=jit_compile)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def benchmark(images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int,
              rounds: int, warmup_steps: int, jit_compile: bool,
              extra_models: Optional[Dict[str, models.LayerSet]] = None) -> Dict[str, list]:
    """examples/s of each round for "custom", "keras" and ``extra_models``, alternating."""
    n_batches = len(images) // batch_size
    batches = [
        (tf.constant(images[i * batch_size:(i + 1) * batch_size]),
         tf.constant(labels[i * batch_size:(i + 1) * batch_size]))
        for i in range(min(n_batches, steps))
    ]
    variants = {"custom": "custom", "keras": "keras", **(extra_models or {})}
    steps_by_kind = {name: make_train_step(layers, jit_compile)
                     for name, layers in variants.items()}
    for step in steps_by_kind.values():
        for i in range(warmup_steps):
            step(*batches[i % len(batches)]).numpy()
    speeds = {kind: [] for kind in steps_by_kind}
    for _ in range(rounds):
        for kind, step in steps_by_kind.items():
            start = time.perf_counter()
            for i in range(steps):
                loss = step(*batches[i % len(batches)])
            loss.numpy()
            speeds[kind].append(steps * batch_size / (time.perf_counter() - start))
    return speeds


def run(flags_obj: flags.FlagValues) -> Dict[str, float]:
    """Times both models as the flags say, prints the table; returns the median speeds."""
    data = load_mnist(flags_obj.data_dir, validation_size=0)
    images = data.train.images.astype(np.float32) / 255.0
    speeds = benchmark(images, data.train.labels, flags_obj.batch_size, flags_obj.steps,
                       flags_obj.rounds, flags_obj.warmup_steps, flags_obj.jit_compile,
                       BREAKDOWN if flags_obj.breakdown else None)
    for kind, values in speeds.items():
        print(f"{kind:7s} examples/s per round: " + " ".join(f"{v:.0f}" for v in values))
    custom, stock = (float(np.median(speeds[k])) for k in ("custom", "keras"))
    for name in BREAKDOWN if flags_obj.breakdown else ():
        extra_ms = 1e3 * flags_obj.batch_size * (1 / float(np.median(speeds[name])) - 1 / stock)
        print(f"custom {name} layers only: {extra_ms:+.2f} ms/step over all-stock")
    print(f"batch_size={flags_obj.batch_size} jit_compile={flags_obj.jit_compile} "
          f"custom={custom:.0f} keras={stock:.0f} examples/s  ratio custom/keras={custom / stock:.3f}")
    return {"custom": custom, "keras": stock}


if __name__ == "__main__":
    define_flags()
    cli.start(cli.main_for(run))
