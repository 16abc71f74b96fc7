"""Picks the layer classes a model is built from: ours or stock Keras."""

from __future__ import annotations

import functools
from typing import NamedTuple, Union

import keras

import custom_layers
from models.registry import LAYER_KINDS


class LayerSet(NamedTuple):
    """The layer constructors the models need."""

    Conv2D: type
    MaxPooling2D: type
    Dense: type
    BatchNormalization: type = keras.layers.BatchNormalization
    GlobalAveragePooling2D: type = keras.layers.GlobalAveragePooling2D
    ReLU: type = keras.layers.ReLU
    Dropout: type = keras.layers.Dropout
    Activation: type = keras.layers.Activation
    Rescaling: type = keras.layers.Rescaling
    GlobalMaxPooling2D: type = keras.layers.GlobalMaxPooling2D


def layer_set(kind: str = "custom", impl: str = "tf") -> LayerSet:
    """Returns the custom layers (with ``impl``) or the stock Keras ones.

    Raises:
        ValueError: for an unknown ``kind``, or ``impl`` other than "tf" with
            stock layers.
    """
    if kind == "custom":
        return LayerSet(
            functools.partial(custom_layers.Conv2D, impl=impl),
            functools.partial(custom_layers.MaxPooling2D, impl=impl),
            functools.partial(custom_layers.Dense, impl=impl),
            custom_layers.BatchNormalization,
            custom_layers.GlobalAveragePooling2D,
            custom_layers.ReLU,
            custom_layers.Dropout,
            functools.partial(custom_layers.Activation, impl=impl),
            custom_layers.Rescaling,
            custom_layers.GlobalMaxPooling2D,
        )
    if kind == "keras":
        if impl != "tf":
            raise ValueError(f"impl={impl!r} applies only to layers='custom'")
        return LayerSet(keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.Dense)
    raise ValueError(f"layers must be one of {LAYER_KINDS}. Received: {kind!r}")


def mixed_layer_set(conv: str, pool: str, dense: str, norm: str = "keras") -> LayerSet:
    """Each layer type from its own kind, e.g. custom convolutions with stock
    pooling and dense layers (for measuring one layer type at a time). ``norm``
    picks batch normalization and the activations; global pooling follows ``pool``,
    rescaling ``dense``."""
    return LayerSet(layer_set(conv).Conv2D, layer_set(pool).MaxPooling2D,
                    layer_set(dense).Dense, layer_set(norm).BatchNormalization,
                    layer_set(pool).GlobalAveragePooling2D, layer_set(norm).ReLU,
                    layer_set(dense).Dropout, layer_set(norm).Activation,
                    layer_set(dense).Rescaling, layer_set(pool).GlobalMaxPooling2D)


def as_layer_set(layers: Union[str, LayerSet], impl: str = "tf") -> LayerSet:
    """``layers`` itself if it is a LayerSet, else ``layer_set(layers, impl)``."""
    return layers if isinstance(layers, LayerSet) else layer_set(layers, impl)


def batch_norm_net_layers(net: str, layers: Union[str, LayerSet], impl: str,
                          dropout_rate: float) -> LayerSet:
    """The layer set of a net built around batch normalization and without dropout.

    Raises:
        ValueError: for impl other than "tf" (batch normalization has no
            NumPy-backed layer) or a non-zero ``dropout_rate`` (accepted so the
            trainer can pass its flag), naming ``net``.
    """
    if impl != "tf":
        raise ValueError(f"the {net} supports only impl='tf'. Received: impl={impl!r}")
    if dropout_rate:
        raise ValueError(f"the {net} has no dropout; dropout_rate must be 0. "
                         f"Received: dropout_rate={dropout_rate!r}")
    return as_layer_set(layers, impl)
