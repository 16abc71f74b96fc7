"""The reference network and the textbook three-layer net."""

from __future__ import annotations

import importlib
from typing import Sequence, Union

import keras

from models import registry
from models.layer_kinds import LayerSet, as_layer_set


def build_convnet(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    layers: Union[str, LayerSet] = "custom",
    dropout_rate: float = 0.5,
    impl: str = "tf",
    name: str = "convnet",
) -> keras.Model:
    """conv5×5×32 → maxpool 2 → conv5×5×64 → maxpool 2 → dense 1024 → dropout → dense.

    Convolutions are SAME-padded with ReLU, the head ends in softmax.
    3,274,634 parameters for MNIST (28, 28, 1) and 4,259,274 for CIFAR-10
    (32, 32, 3), whichever ``layers`` kind builds it.

    Args:
        input_shape: (H, W, C) of one image.
        num_classes: size of the softmax.
        layers: "custom" (hand-written gradients), "keras" (stock layers), or a
            ``LayerSet`` such as ``mixed_layer_set("custom", "keras", "keras")``.
        dropout_rate: dropout before the last layer, in [0, 1).
        impl: "tf" or "numpy" for custom layers.
        name: the model's name.

    Returns:
        An uncompiled functional ``keras.Model`` taking (N, H, W, C) floats and
        returning (N, num_classes) probabilities.
    """
    L = as_layer_set(layers, impl)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = L.Conv2D(32, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(64, 5, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = L.Dense(1024, activation="relu", name="fc1")(x)
    x = L.Dropout(dropout_rate, name="dropout")(x)
    # Softmax is computed in float32 even under mixed precision.
    outputs = L.Dense(num_classes, activation="softmax", dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_three_layer(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    layers: Union[str, LayerSet] = "custom",
    dropout_rate: float = 0.0,
    impl: str = "tf",
    name: str = "three_layer",
) -> keras.Model:
    """The cs231n three-layer net: conv7×7×32 → ReLU → maxpool 2 → dense 100 → ReLU → dense.

    ``dropout_rate`` (default 0) adds dropout before the last layer.
    """
    L = as_layer_set(layers, impl)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = L.Conv2D(32, 7, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = L.Dense(100, activation="relu", name="fc1")(x)
    if dropout_rate:
        x = L.Dropout(dropout_rate, name="dropout")(x)
    outputs = L.Dense(num_classes, activation="softmax", dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_model(model: str, **kwargs) -> keras.Model:
    """Builds ``model`` (a ``models.registry.MODELS`` name) with the registry's kwargs,
    ``kwargs`` taking precedence.

    Raises:
        ValueError: for an unknown name, or a builder's own argument check.
    """
    spec = registry.spec(model)
    module, function = spec.builder.split(":")
    # The caller's kwargs override the registry's (e.g. smaller widths in a test).
    return getattr(importlib.import_module(module), function)(**{**dict(spec.kwargs), **kwargs})
