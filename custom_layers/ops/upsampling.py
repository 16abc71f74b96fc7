"""Upsampling by integer factors, nearest and bilinear: NumPy reference and TF ops.

    nearest   y[i·f + k] = x[i]            dx[i] = Σₖ dy[i·f + k]
    bilinear, bicubic, lanczos3, lanczos5:
              y = A_H x A_Wᵀ (per channel)  dx = A_Hᵀ dy A_W

A is TensorFlow's half-pixel bilinear interpolation matrix (``tf.image.resize``,
no antialiasing): output row o reads source s = (o + ½)/f − ½ from rows
max(⌊s⌋, 0) and min(⌈s⌉, size − 1) with weights 1 − (s − ⌊s⌋) and s − ⌊s⌋,
in float32 as TensorFlow's kernels compute them (its bilinear resize is
float32 inside whatever the input's dtype). The NumPy reference writes the
bilinear A out; the TF op reads every method's A off TensorFlow's forward
resize of the unit vectors.
Inputs are channels-last, (N, H, W, C) for bilinear, (N, *spatial, C) for
nearest.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op

INTERPOLATIONS = ("bilinear", "bicubic", "lanczos3", "lanczos5")


def interpolation_matrix(size: int, factor: int) -> np.ndarray:
    """(size·factor, size): the bilinear weights ``tf.image.resize`` uses, computed in
    float32 as its kernels compute them (so the gradient is that of its forward)."""
    f32 = np.float32
    scale = f32(size) / f32(size * factor)
    a = np.zeros((size * factor, size))
    for o in range(size * factor):
        s = (f32(o) + f32(0.5)) * scale - f32(0.5)
        lerp = s - f32(math.floor(s))
        a[o, max(math.floor(s), 0)] += f32(1) - lerp
        a[o, min(math.ceil(s), size - 1)] += lerp
    return a


def upsample_nearest_forward(x: np.ndarray, factors: Sequence[int]):
    """x: (N, *spatial, C); factors: one per spatial axis. Returns out and the cache."""
    out = x
    for axis, f in enumerate(factors, start=1):
        out = np.repeat(out, f, axis=axis)
    return out, tuple(factors)


def upsample_nearest_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx: the sum of each block of f₁ × f₂ × … outputs."""
    factors = cache
    n, c = dout.shape[0], dout.shape[-1]
    spatial = [s // f for s, f in zip(dout.shape[1:-1], factors)]
    blocks = [v for s, f in zip(spatial, factors) for v in (s, f)]
    return dout.reshape(n, *blocks, c).sum(axis=tuple(range(2, 2 * len(factors) + 1, 2)))


def upsample_bilinear_forward(x: np.ndarray, factors: Sequence[int]):
    """x: (N, H, W, C). Returns out (N, H·fh, W·fw, C) and the cache (the two matrices)."""
    ah, aw = (interpolation_matrix(s, f) for s, f in zip(x.shape[1:3], factors))
    return np.einsum("oh,nhwc,pw->nopc", ah, x, aw), (ah, aw)


def upsample_bilinear_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = A_Hᵀ dout A_W."""
    ah, aw = cache
    return np.einsum("oh,nopc,pw->nhwc", ah, dout, aw)


def upsample_nearest(x: tf.Tensor, factors: Sequence[int]) -> tf.Tensor:
    """x repeated ``factors[i]`` times along spatial axis i + 1 (as ``keras.ops.repeat``),
    with dx the sum over each block of dy.

    Args:
        x: (N, *spatial, C) with the spatial sizes known.
        factors: positive ints, one per spatial axis.
    """
    x = tf.convert_to_tensor(x)
    factors = [int(f) for f in factors]
    spatial = x.shape[1:-1]
    if len(factors) != len(spatial) or None in spatial or min(factors) < 1:
        raise ValueError(f"upsample_nearest needs one positive factor per known spatial axis. "
                         f"Received: factors={factors}, inputs.shape={x.shape}")

    def forward(x):
        y = x
        for axis, f in enumerate(factors, start=1):
            y = tf.repeat(y, f, axis=axis)
        return y, None

    def backward(dy, _):
        blocks = [v for s, f in zip(spatial, factors) for v in (s, f)]
        dy = tf.reshape(dy, [-1, *blocks, dy.shape[-1]])
        return (tf.reduce_sum(dy, axis=list(range(2, 2 * len(factors) + 1, 2))),)

    return hand_written_op(forward, backward, x)


def resize_matrix(size: int, factor: int, interpolation: str, dtype: tf.DType) -> tf.Tensor:
    """(size·factor, size): what ``keras.ops.image.resize`` does along one axis, read off
    by resizing the unit vectors (a forward resize, folded to a constant)."""
    basis = tf.eye(size, dtype=tf.float32)[:, :, None, None]  # size images, one per unit vector
    columns = keras.ops.image.resize(basis, (size * factor, 1), interpolation=interpolation,
                                     data_format="channels_last")
    return tf.cast(tf.transpose(columns[:, :, 0, 0]), dtype)


def upsample_interpolated(x: tf.Tensor, factors: Sequence[int],
                          interpolation: str = "bilinear") -> tf.Tensor:
    """``keras.ops.image.resize(x, (H·fh, W·fw), interpolation)`` with dx = A_Hᵀ dy A_W.

    Bilinear, bicubic and Lanczos resizing are separable and linear in x:
    y = A_H x A_Wᵀ per channel. A is read off TensorFlow's own forward resize
    (``resize_matrix``), so the gradient is exactly that of the values it
    computes (float32 weights inside, whatever the input's dtype).

    Args:
        x: (N, H, W, C) with H and W known.
        factors: (fh, fw), positive ints.
        interpolation: "bilinear", "bicubic", "lanczos3" or "lanczos5".
    """
    x = tf.convert_to_tensor(x)
    fh, fw = (int(f) for f in factors)
    if x.shape.rank != 4 or None in x.shape[1:3] or min(fh, fw) < 1:
        raise ValueError(f"upsampling needs (N, H, W, C) with H and W known and positive "
                         f"factors. Received: factors={tuple(factors)}, inputs.shape={x.shape}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"upsampling has hand-written backwards for {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    h, w = x.shape[1], x.shape[2]
    compute = tf.float64 if x.dtype == tf.float64 else tf.float32

    def forward(x):
        # Keras's own call (as UpSampling2D makes it), so the values are stock's.
        return keras.ops.image.resize(x, (h * fh, w * fw), interpolation=interpolation,
                                      data_format="channels_last"), None

    def backward(dy, _):
        ah = resize_matrix(h, fh, interpolation, compute)
        aw = resize_matrix(w, fw, interpolation, compute)
        dx = tf.einsum("oh,nopc,pw->nhwc", ah, tf.cast(dy, compute), aw)
        return (tf.cast(dx, x.dtype),)

    return hand_written_op(forward, backward, x)
