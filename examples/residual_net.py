"""Reusing the custom layers in another architecture: a small residual net.

Trains for a few steps with ``model.fit`` on MNIST and prints the test loss and accuracy::

    python -m examples.residual_net --data_dir=../shared/data/mnist --steps=200
"""

from __future__ import annotations

from typing import Dict

import keras
from absl import flags

import custom_layers
from datasets import load_mnist
from training import cli


def residual_block(x, filters: int, name: str):
    """Two 3×3 custom convolutions with an identity (or 1×1) shortcut."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = custom_layers.Conv2D(filters, 1, name=f"{name}_proj")(x)
    y = custom_layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_a")(x)
    y = custom_layers.Conv2D(filters, 3, padding="same", name=f"{name}_b")(y)
    return keras.layers.Activation("relu", name=f"{name}_out")(keras.layers.Add()([shortcut, y]))


def build_resnet(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """conv 3×3×16 → 2 residual blocks with pooling → global average → dense."""
    inputs = keras.Input(input_shape)
    x = custom_layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    x = residual_block(x, 16, "block1")
    x = custom_layers.MaxPooling2D(2, name="pool1")(x)
    x = residual_block(x, 32, "block2")
    x = custom_layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = custom_layers.Dense(num_classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="small_resnet")


def run(flags_obj: flags.FlagValues) -> Dict[str, float]:
    """Trains for ``--steps`` steps; bad data ends in the apps' one-line errors."""
    data = load_mnist(flags_obj.data_dir, validation_size=0)
    model = build_resnet()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    count = flags_obj.steps * flags_obj.batch_size
    images = data.train.images[:count] / 255.0
    labels = data.train.labels[:count]
    model.fit(images, labels, batch_size=flags_obj.batch_size, epochs=1, verbose=2)
    loss, accuracy = model.evaluate(data.test.images / 255.0, data.test.labels, verbose=0)
    print(f"test_loss={loss:.4f} test_accuracy={accuracy:.4f}")
    return {"test_loss": loss, "test_accuracy": accuracy}


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "MNIST folder; default: Keras cache or download.")
    flags.DEFINE_integer("steps", 200, "Training steps.", lower_bound=1, upper_bound=10**6)
    flags.DEFINE_integer("batch_size", 64, "Examples per step.", lower_bound=1, upper_bound=1 << 16)
    cli.start(cli.main_for(run))
