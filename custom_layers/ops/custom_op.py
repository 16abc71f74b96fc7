"""What every hand-written TF op is built from: argument rules, dtypes, wrappers.

* ``weighted_op`` wraps a layer's forward/backward pair as a
  ``tf.custom_gradient`` op over (x, kernel[, bias]).
* ``numpy_op`` runs a NumPy reference pair through ``tf.numpy_function``
  (``impl="numpy"``).
* ``dilate`` spreads a tensor by a stride: the step shared by every backward
  whose forward strides (conv dx, depthwise dx, pooling dx, kernel spreading).
* ``accumulation_dtype``: float16/bfloat16 gradients of weights accumulate in
  float32 (a float16 sum over a large batch overflows at 65,504).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

IMPLS = ("tf", "numpy")
FUSED_ACTIVATIONS = (None, "relu")
IntOrPair = Union[int, Sequence[int]]

_LOW_PRECISION = (tf.float16, tf.bfloat16)


def normalize_impl(impl: str) -> str:
    """Returns ``impl`` if it is "tf" or "numpy", else raises ValueError."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}. Received: impl={impl!r}")
    return impl


def normalize_activation(activation: Optional[str]) -> Optional[str]:
    """Returns None or "relu", the activations the ops fuse."""
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {FUSED_ACTIVATIONS}. Received: {activation!r}"
        )
    return activation


def accumulation_dtype(dtype: tf.DType) -> tf.DType:
    """float32 for float16/bfloat16, else ``dtype``: where weight gradients are summed."""
    return tf.float32 if dtype in _LOW_PRECISION else dtype


def dilate(t: tf.Tensor, strides: Tuple[int, int]) -> tf.Tensor:
    """Inserts ``stride - 1`` zeros between rows and columns of (N, H, W, C).

    Returns:
        (N, (H - 1) * SH + 1, (W - 1) * SW + 1, C).
    """
    sh, sw = strides
    if sh == 1 and sw == 1:
        return t
    n = tf.shape(t)[0]
    h, w, c = t.shape[1], t.shape[2], t.shape[3]
    t = tf.reshape(t, [n, h, 1, w, 1, c])
    t = tf.pad(t, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]])
    t = tf.reshape(t, [n, h * sh, w * sw, c])
    return t[:, : (h - 1) * sh + 1, : (w - 1) * sw + 1, :]


def weighted_op(forward: Callable, backward: Callable, has_bias: bool) -> Callable:
    """Wraps forward/backward of a layer with weights as a custom-gradient op.

    ``forward(x, kernel, bias_or_None) -> (y, saved)``;
    ``backward(dy, saved) -> (dx, dkernel, dbias_or_None)``. The op takes
    (x, kernel, bias) or (x, kernel) positionally (keyword calls skip the
    custom gradient in eager mode) and returns one gradient per input.
    """
    if has_bias:

        @tf.custom_gradient
        def op(x, kernel, bias):
            y, saved = forward(x, kernel, bias)
            return y, lambda dy: backward(dy, saved)

    else:

        @tf.custom_gradient
        def op(x, kernel):
            y, saved = forward(x, kernel, None)
            return y, lambda dy: backward(dy, saved)[:2]

    return op


def np_compute_dtype(dtype) -> np.dtype:
    """float64 stays float64; every other float is computed in float32 by NumPy."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def numpy_op(name: str, np_forward: Callable, np_backward: Callable, out_shape,
             inputs: Sequence[Optional[tf.Tensor]], optional_mask: Sequence[bool]) -> tf.Tensor:
    """Runs a reference forward/backward pair as a TF op with a custom gradient.

    ``inputs`` are tensors (None for absent optional ones); the NumPy functions
    receive every present input as an array in float32/float64 and return the
    output, resp. one gradient per input (entries whose ``optional_mask`` is
    False are dropped).
    """
    present = [t for t in inputs if t is not None]
    x_dtype = present[0].dtype

    def as_arrays(arrays):
        return [np.asarray(a).astype(np_compute_dtype(a.dtype)) for a in arrays]

    def np_fwd(*arrays):
        return np.asarray(np_forward(*as_arrays(arrays))).astype(x_dtype.as_numpy_dtype)

    def np_bwd(dy, *arrays):
        grads = np_backward(*as_arrays([dy, *arrays]))
        grads = [g for g, keep in zip(grads, optional_mask) if keep]
        return [np.asarray(g).astype(t.dtype.as_numpy_dtype) for g, t in zip(grads, present)]

    @tf.custom_gradient
    def op(*tensors):
        y = tf.numpy_function(np_fwd, list(tensors), x_dtype, stateful=False, name=name)
        y.set_shape(out_shape)

        def grad(dy):
            grads = tf.numpy_function(
                np_bwd, [dy, *tensors], [t.dtype for t in tensors], stateful=False,
                name=name + "_grad",
            )
            if isinstance(grads, tf.Tensor):  # a one-element Tout comes back bare
                grads = [grads]
            for g, t in zip(grads, tensors):
                g.set_shape(t.shape)
            return grads

        return y, grad

    return op(*present)
