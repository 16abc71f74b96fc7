"""One function and its gradient, as the tests compare them with stock's."""

from typing import Callable, Tuple

import numpy as np
import tensorflow as tf


def value_and_grad(f: Callable, x: np.ndarray, dy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """f(x) and the gradient of f at x along dy (a vector-Jacobian product), as arrays."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    return y.numpy(), tape.gradient(y, x, tf.constant(dy)).numpy()


def layer_step(layer, x: tf.Tensor, dy: tf.Tensor) -> list:
    """[y, dx, then the gradient of each trainable weight] of one call of ``layer`` along dy."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    return [y, *tape.gradient(y, [x, *layer.trainable_weights], dy)]


def assert_normalization_matches(ours: list, stock: list, reference_out: np.ndarray,
                                 reference_grads, tolerance: float) -> None:
    """A normalisation twin's ``layer_step`` against stock's (outputs bit for bit,
    gradients within ``tolerance``) and the NumPy reference's (None grads skipped)."""
    from custom_layers.gradcheck import rel_error

    np.testing.assert_array_equal(ours[0], stock[0])
    assert len(ours) == len(stock)
    for a, b in zip(ours[1:], stock[1:]):
        assert rel_error(a.numpy(), b.numpy()) <= tolerance
    assert rel_error(reference_out, stock[0].numpy()) <= tolerance
    for a, b in zip([g for g in reference_grads if g is not None], stock[1:]):
        assert rel_error(a, b.numpy()) <= tolerance


def normalization_twins(name: str, shape, **config):
    """(ours, stock): the ``name`` normalisation layers built for ``shape``, with the
    same random γ and β, and those weights as arrays (None where the layer has none)."""
    import keras

    import custom_layers

    layers = [getattr(module, name)(gamma_initializer="random_normal",
                                    beta_initializer="random_normal", **config)
              for module in (custom_layers, keras.layers)]
    for layer in layers:
        layer.build(shape)
    layers[0].set_weights(layers[1].get_weights())
    arrays = [None if getattr(layers[1], n, None) is None else getattr(layers[1], n).numpy()
              for n in ("gamma", "beta")]
    return layers, arrays


def assert_mixed_bfloat16_matches(name: str, shape, **config) -> None:
    """Under mixed_bfloat16 the ``name`` twin keeps float32 weights, gives stock's
    bfloat16 output bit for bit, and gradients within bfloat16 rounding of stock's."""
    import keras

    import custom_layers
    from custom_layers.gradcheck import rel_error

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        rng = np.random.default_rng(1)
        x = tf.constant(rng.normal(size=shape), tf.float32)
        dy = tf.constant(rng.normal(size=shape), tf.bfloat16)
        layers = [getattr(module, name)(**config) for module in (custom_layers, keras.layers)]
        ours, stock = (layer_step(layer, x, dy) for layer in layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ours[0].dtype == tf.bfloat16 and ours[2].dtype == tf.float32
    np.testing.assert_array_equal(ours[0], stock[0])
    for a, b in zip(ours[1:], stock[1:]):
        assert rel_error(a.numpy().astype(np.float32), b.numpy().astype(np.float32)) <= 2 ** -7


def penalty_gradient(f: Callable, x: tf.Tensor, dy: tf.Tensor) -> np.ndarray:
    """A second-order check: the gradient in x of ||(df/dx)ᵀ dy||²."""
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = f(x)
        penalty = tf.reduce_sum(inner.gradient(y, x, dy) ** 2)
    return outer.gradient(penalty, x).numpy()
