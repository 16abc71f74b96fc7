"""What every benchmark shares: the CPU it ran on and a compiled training step."""

from __future__ import annotations

import subprocess

import keras
import tensorflow as tf


def cpu_description() -> str:
    """lscpu's model name and the SIMD/matrix flags that decide the kernels."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "CPU: unknown (no lscpu)"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    model = fields.get("Model name", "?").strip()
    cpu_flags = set(fields.get("Flags", "").split())
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in cpu_flags]
    return f"CPU: {model}, {fields.get('CPU(s)', '?').strip()} CPUs, flags: {' '.join(shown) or 'none of avx2/avx512/amx'}"


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
