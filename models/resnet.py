"""ResNet for 32×32 images (He et al. 2016, §4.2): ResNet-20/32/44/56/110."""

from __future__ import annotations

from typing import Sequence, Union

import keras

import custom_layers
from models.layer_kinds import LayerSet, batch_norm_net_layers


# Model files saved before the shortcut moved into custom_layers name it "models>ZeroPadShortcut".
@keras.saving.register_keras_serializable(package="models", name="ZeroPadShortcut")
class _SavedZeroPadShortcut(custom_layers.ZeroPadShortcut):
    pass


def _conv_bn(L: LayerSet, x, filters: int, stride: int, name: str):
    # No bias: the batch norm that follows subtracts it again.
    x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                 kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def basic_block(L: LayerSet, x, filters: int, stride: int, name: str):
    """conv-BN-ReLU-conv-BN, plus the (option-A) shortcut, then ReLU."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = custom_layers.ZeroPadShortcut(filters, stride, name=f"{name}_shortcut")(x)
    y = L.ReLU(name=f"{name}_relu1")(_conv_bn(L, x, filters, stride, f"{name}_1"))
    y = _conv_bn(L, y, filters, 1, f"{name}_2")
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return L.ReLU(name=f"{name}_out")(y)


def build_resnet(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    layers: Union[str, LayerSet] = "custom",
    depth: int = 20,
    impl: str = "tf",
    name: str = "",
    dropout_rate: float = 0.0,
    output_dtype: str = "float32",
) -> keras.Model:
    """3×3 conv 16 → 3 stages of n basic blocks (16/32/64 filters) → GAP → dense.

    ``depth`` = 6n + 2: 20 gives ResNet-20 (271,098 parameters for CIFAR-10, of
    which 1,376 are batch-norm moving statistics), 32 gives ResNet-32 (466,426),
    56 ResNet-56.
    Stages 2 and 3 start with stride 2. Every convolution is followed by batch
    normalization; the shortcut is identity or option A
    (``custom_layers.ZeroPadShortcut`` with either layer kind: slicing and
    padding, no arithmetic to compare).

    Args:
        input_shape: (H, W, C) of one image.
        num_classes: size of the softmax.
        layers: "custom", "keras", or a ``LayerSet``.
        depth: 6n + 2 with n ≥ 1.
        impl: "tf" only (batch normalization has no NumPy-backed layer).
        name: the model's name (default ``resnet<depth>``).
        dropout_rate: must be 0 (the paper's network has no dropout); accepted so
            the trainer can pass its flag.

    Returns:
        An uncompiled functional model from (N, H, W, C) floats to (N,
        num_classes) probabilities.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110). "
                         f"Received: depth={depth!r}")
    L = batch_norm_net_layers("ResNet", layers, impl, dropout_rate)
    blocks = (depth - 2) // 6
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = L.ReLU(name="stem_relu")(_conv_bn(L, inputs, 16, 1, "stem"))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            stride = 2 if stage and not block else 1
            x = basic_block(L, x, filters, stride, f"stage{stage + 1}_block{block + 1}")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(num_classes, activation="softmax", dtype=output_dtype,
                      name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")
