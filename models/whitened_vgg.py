"""A VGG-style CIFAR net behind a frozen whitening layer (the CIFAR-10 speed-run design).

Keller Jordan's airbench (after David Page's "How to train your ResNet"): a
2×2 convolution fixed to the whitening transform of the training images'
2×2 patches, then three groups conv → max pool → BN → GELU → conv → BN →
GELU, no residuals, each conv starting as the identity on its first input
channels; a linear head whose logits are scaled by 1/9.
"""

from __future__ import annotations

from typing import Sequence, Union

import keras
import numpy as np

from models.layer_kinds import LayerSet, batch_norm_net_layers

WHITENING_SIZE = 2
WHITENING_EPSILON = 5e-4
LOGIT_SCALE = 1 / 9
# Batch norm as in the speed runs: scale fixed at 1, tiny epsilon, fast statistics.
BN_ARGS = dict(scale=False, momentum=0.6, epsilon=1e-12)
WHITEN = "whiten"


def whitening_kernel(images: np.ndarray, size: int = WHITENING_SIZE,
                     epsilon: float = WHITENING_EPSILON) -> np.ndarray:
    """The filters that whiten ``images``' size × size patches, and their negatives.

    The patch covariance Σ = E[p pᵀ] (patches of the normalised images, not
    centred) has eigenpairs (λ_i, v_i); filter i is v_i / √(λ_i + ε), largest λ
    first, and filter d + i its negative (d = size²·C), so that a ReLU-like
    activation keeps both signs.

    Args:
        images: (N, H, W, C) floats, normalised as the network sees them.

    Returns:
        (size, size, C, 2·size²·C) float32, a Conv2D kernel.
    """
    images = np.asarray(images, np.float64)
    if images.ndim != 4 or min(images.shape[1:3]) < size:
        raise ValueError(f"whitening needs (N, H, W, C) images at least {size}×{size}. "
                         f"Received shape {images.shape}")
    n, h, w, c = images.shape
    patches = np.stack([images[:, i:h - size + 1 + i, j:w - size + 1 + j, :]
                        for i in range(size) for j in range(size)], axis=3)
    flat = patches.reshape(-1, size * size * c)  # (i, j, c) order: a Keras kernel's
    covariance = flat.T @ flat / len(flat)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + epsilon)
    kernel = np.concatenate([filters, -filters], axis=1)
    return kernel.reshape(size, size, c, 2 * size * size * c).astype(np.float32)


def set_whitening(model: keras.Model, images: np.ndarray) -> None:
    """Sets the model's whitening layer from (N, H, W, C) normalised training images
    (a model built with ``whitening=False`` keeps its trainable first layer)."""
    layer = model.get_layer(WHITEN)
    if layer.kernel.trainable:
        return
    kernel = whitening_kernel(images, layer.kernel.shape[0])
    layer.kernel.assign(kernel)


def dirac_(layer: keras.layers.Layer) -> None:
    """Makes a 3×3 conv's first C_in filters the identity (an implicit residual)."""
    kernel = layer.kernel.numpy()
    kh, kw, cin, cout = kernel.shape
    n = min(cin, cout)
    kernel[:, :, :, :n] = 0.0
    kernel[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
    layer.kernel.assign(kernel)


def _fan_in_uniform() -> keras.initializers.Initializer:
    """The speed runs' (PyTorch's) default weights, U(±1/√fan_in). Glorot's are ~1.7×
    larger: behind batch norm that is a ~3× smaller effective learning rate."""
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def _conv_group(L: LayerSet, x, width: int, name: str, convs: list):
    conv1, conv2 = (L.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}",
                             kernel_initializer=_fan_in_uniform()) for i in (1, 2))
    convs += [conv1, conv2]
    x = L.MaxPooling2D(2, name=f"{name}_pool")(conv1(x))
    x = L.Activation("gelu", name=f"{name}_gelu1")(L.BatchNormalization(**BN_ARGS, name=f"{name}_bn1")(x))
    x = L.BatchNormalization(**BN_ARGS, name=f"{name}_bn2")(conv2(x))
    return L.Activation("gelu", name=f"{name}_gelu2")(x)


def build_whitened_vgg(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    layers: Union[str, LayerSet] = "custom",
    widths: Sequence[int] = (64, 128, 128),
    whitening: bool = True,
    impl: str = "tf",
    name: str = "",
    dropout_rate: float = 0.0,
    output_dtype: str = "float32",
) -> keras.Model:
    """whiten 2×2 (24 filters, valid) → GELU → 3 × [conv, pool, BN, GELU, conv, BN, GELU] →
    global max pool (max pool 3 at 32×32) → dense (no bias) → × 1/9 → softmax.

    The whitening kernel starts as zeros and is not trainable:
    ``set_whitening`` fills it from the training images (the trainer does,
    before step 1); its bias trains. With widths (64, 128, 128) the model
    holds 570,296 weights, 1,280 of them batch-norm moving statistics.

    Args:
        input_shape: (H, W, C) of one image.
        num_classes: size of the softmax.
        layers: "custom", "keras", or a ``LayerSet``.
        widths: filters of the three groups.
        whitening: False makes the first layer an ordinary trainable 2×2
            convolution (Keras's default initialiser): the ablation without
            whitening. The other convolutions and the head start
            U(±1/√fan_in), as in the speed runs.
        impl: "tf" only (batch normalization has no NumPy-backed layer).
        name: the model's name (default ``whitened_vgg``).
        dropout_rate: must be 0 (the design has no dropout).

    Returns:
        An uncompiled functional model from (N, H, W, C) floats to (N,
        num_classes) probabilities.
    """
    widths = tuple(widths)
    if len(widths) != 3 or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"widths must be three positive integers. Received: widths={widths!r}")
    L = batch_norm_net_layers("whitened VGG", layers, impl, dropout_rate)
    channels = input_shape[-1]
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    whiten = L.Conv2D(2 * WHITENING_SIZE ** 2 * channels, WHITENING_SIZE, padding="valid",
                      kernel_initializer="zeros" if whitening else "glorot_uniform", name=WHITEN)
    x = whiten(inputs)
    if whitening:
        whiten.kernel.trainable = False  # fixed by set_whitening; only its bias may train
    x = L.Activation("gelu", name=f"{WHITEN}_gelu")(x)
    convs: list = []
    for i, width in enumerate(widths):
        x = _conv_group(L, x, width, f"block{i + 1}", convs)
    # The speed runs' max pool 3 over the last 3×3 maps, for inputs of any size >= 16.
    x = L.GlobalMaxPooling2D(name="pool")(x)
    x = L.Dense(num_classes, use_bias=False, name="head",
                kernel_initializer=_fan_in_uniform())(x)
    x = L.Rescaling(LOGIT_SCALE, name="logit_scale")(x)
    outputs = L.Activation("softmax", dtype=output_dtype, name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=name or "whitened_vgg")
    for conv in convs:
        dirac_(conv)
    return model
