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
