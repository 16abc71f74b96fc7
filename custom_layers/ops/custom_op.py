"""What every hand-written TF op is built from: argument rules, dtypes, wrappers.

* ``hand_written_op`` runs a forward/backward pair as a ``tf.custom_gradient``
  op: the one way every op here gets its gradient.
* ``numpy_op`` runs a NumPy reference pair through ``tf.numpy_function``
  (``impl="numpy"``).
* ``dilate`` spreads a tensor by a stride: the step shared by every backward
  whose forward strides (conv dx, depthwise dx, pooling dx, kernel spreading).
* ``accumulation_dtype``: float16/bfloat16 gradients of weights accumulate in
  float32 (a float16 sum over a large batch overflows at 65,504).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

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


Forward = Callable[..., Tuple[Any, Any]]
Backward = Callable[[Any, Any], Sequence[Any]]


def hand_written_op(forward: Forward, backward: Backward, *inputs: Optional[tf.Tensor]):
    """Runs ``forward`` as a TensorFlow op whose gradient is ``backward``: the one
    contract every op of this package follows.

    Args:
        forward: ``forward(*inputs) -> (outputs, saved)``; outputs a tensor or
            a tuple of tensors, saved whatever the backward needs.
        backward: ``backward(dy, saved) -> gradients``, one per input (in
            order; None for an absent input); dy is a tuple when outputs is.
        *inputs: the differentiable inputs. None stands for an absent optional
            input (a bias): forward sees None and its gradient is dropped.
            What is not differentiated (masks, labels, static geometry) is
            captured by forward and backward instead.

    Returns:
        forward's outputs, with ``backward`` as their gradient.
    """
    present = [i for i, t in enumerate(inputs) if t is not None]

    @tf.custom_gradient
    def op(*tensors):
        full = [None] * len(inputs)
        for i, t in zip(present, tensors):
            full[i] = t
        outputs, saved = forward(*full)

        def grad(*dys):
            grads = backward(dys[0] if len(dys) == 1 else dys, saved)
            if len(grads) != len(inputs):
                raise ValueError(f"{getattr(backward, '__qualname__', backward)} returned "
                                 f"{len(grads)} gradients for {len(inputs)} inputs")
            return [grads[i] for i in present]

        return outputs, grad

    # Positional tensors: a keyword call would skip the custom gradient.
    return op(*[inputs[i] for i in present])


def np_compute_dtype(dtype) -> np.dtype:
    """float64 stays float64; every other float is computed in float32 by NumPy."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def numpy_op(name: str, np_forward: Callable, np_backward: Callable, out_shape,
             inputs: Sequence[Optional[tf.Tensor]]) -> tf.Tensor:
    """Runs a reference forward/backward pair as a TF op with a custom gradient.

    ``inputs`` are tensors (None for absent optional ones); the NumPy functions
    receive every present input as an array in float32/float64 and return the
    output, resp. one gradient per input of ``inputs`` (those of absent inputs
    are dropped).
    """
    present = [t for t in inputs if t is not None]
    is_present = [t is not None for t in inputs]
    x_dtype = present[0].dtype

    def as_arrays(arrays):
        return [np.asarray(a).astype(np_compute_dtype(a.dtype)) for a in arrays]

    def np_fwd(*arrays):
        return np.asarray(np_forward(*as_arrays(arrays))).astype(x_dtype.as_numpy_dtype)

    def np_bwd(dy, *arrays):
        grads = np_backward(*as_arrays([dy, *arrays]))
        grads = [g for g, keep in zip(grads, is_present) if keep]
        return [np.asarray(g).astype(t.dtype.as_numpy_dtype) for g, t in zip(grads, present)]

    def forward(*tensors):
        y = tf.numpy_function(np_fwd, list(tensors), x_dtype, stateful=False, name=name)
        y.set_shape(out_shape)
        return y, tensors

    def backward(dy, tensors):
        grads = tf.numpy_function(np_bwd, [dy, *tensors], [t.dtype for t in tensors],
                                  stateful=False, name=name + "_grad")
        if isinstance(grads, tf.Tensor):  # a one-element Tout comes back bare
            grads = [grads]
        for g, t in zip(grads, tensors):
            g.set_shape(t.shape)
        return grads

    return hand_written_op(forward, backward, *present)
