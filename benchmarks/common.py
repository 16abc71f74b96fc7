"""What every benchmark shares: flag checks, a compiled training step and the
alternating timed rounds."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence

import keras
import tensorflow as tf

from training.errors import UsageError


def train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer,
               jit_compile: bool = False):
    """A compiled step(images, labels) -> loss: sparse cross-entropy, one optimizer update."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=jit_compile)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def require_known(flag: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    """Raises UsageError naming ``--flag`` and the values not in ``allowed``."""
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise UsageError(f"unknown --{flag} {unknown}; choose from {', '.join(allowed)}")


def alternating_rounds(steps_by_kind: Dict[str, Callable], batches: Sequence, steps: int,
                       rounds: int, warmup_steps: int, batch_size: int) -> Dict[str, List[float]]:
    """examples/s of each round per kind: every step warmed up first, then the
    kinds take turns, ``steps`` steps a round, so machine noise hits all alike."""
    for step in steps_by_kind.values():
        for i in range(warmup_steps):
            step(*batches[i % len(batches)]).numpy()
    speeds: Dict[str, List[float]] = {kind: [] for kind in steps_by_kind}
    for _ in range(rounds):
        for kind, step in steps_by_kind.items():
            start = time.perf_counter()
            for i in range(steps):
                loss = step(*batches[i % len(batches)])
            loss.numpy()
            speeds[kind].append(steps * batch_size / (time.perf_counter() - start))
    return speeds
