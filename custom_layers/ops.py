"""TensorFlow ops whose gradients are written by hand (``tf.custom_gradient``).

The backward passes use only forward convolutions, matmuls, reductions,
padding/slicing and elementwise ops, never TensorFlow's gradient kernels
(``Conv2DBackpropInput/Filter``, ``MaxPoolGrad*``, ``ReluGrad``,
``BiasAddGrad``) nor autodiff, so they run eagerly, in graphs, under XLA, on
GPUs and under ``tf.distribute``:

* conv2d: dx is the full convolution of the (stride-dilated) upstream gradient
  with the 180°-rotated kernel; dw is the correlation of the padded input with
  the upstream gradient, computed as one forward convolution in which the
  channels play the batch and the batch plays the channels; db = Σ dy.
* max_pool2d: each window's gradient goes to its first maximum in row-major
  order (TensorFlow's choice), overlapping windows add up.
* dense: dx = dy · wᵀ, dw = xᵀ · dy, db = Σ dy.
* relu: dx = dy where y > 0.

Every op takes ``impl="tf"`` (default) or ``impl="numpy"``. The NumPy
implementation runs ``custom_layers.reference`` forward and backward through
``tf.numpy_function``: literally the textbook maths, but CPU-only, much slower,
not compilable with XLA and not exportable to a SavedModel.

Mixed precision: x and dy may be float16/bfloat16 while the weights stay
float32. Weights are cast to x's dtype for the forward; dw and db are
accumulated in float32 (a float16 sum over a large batch overflows at 65,504)
and returned in the weights' dtype; dx comes back in x's dtype.

Shapes: x (N, H, W, C), kernel (KH, KW, C, F), bias (F,), outputs
(N, HO, WO, F); spatial sizes H, W must be known when the op is traced, the
batch size need not be.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from custom_layers import reference
from custom_layers.padding import (
    AxisPadding,
    normalize_padding,
    normalize_tuple,
    spatial_padding,
)

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


def _accumulation_dtype(dtype: tf.DType) -> tf.DType:
    return tf.float32 if dtype in _LOW_PRECISION else dtype


def _static_hw(x: tf.Tensor, op_name: str) -> Tuple[int, int]:
    if x.shape.rank != 4:
        raise ValueError(
            f"{op_name} expects a 4-D input (N, H, W, C). Received shape {x.shape}"
        )
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ValueError(
            f"{op_name} needs the input's height and width known when it is "
            f"traced. Received shape {x.shape}"
        )
    return h, w


def _dilate(t: tf.Tensor, strides: Tuple[int, int]) -> tf.Tensor:
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


def _pad_or_crop_amount(needed_after: int) -> Tuple[int, int]:
    """Splits a signed end adjustment into (pad, crop)."""
    return max(needed_after, 0), max(-needed_after, 0)


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------


def spread_kernel(kernel: tf.Tensor, dilation_rate: IntOrPair) -> tf.Tensor:
    """(KH, KW, C, F) -> ((KH-1)·DH+1, (KW-1)·DW+1, C, F) with zeros between the taps.

    A dilated convolution is the ordinary one with this kernel, so its dx and
    dw follow the same identities; the gradient of the spreading (pad and
    reshape) reads dw back at the taps.
    """
    rate = normalize_tuple(dilation_rate, "dilation_rate")
    if rate == (1, 1):
        return kernel
    kh, kw, c, f = kernel.shape
    spread = _dilate(tf.reshape(kernel, [1, kh, kw, c * f]), rate)
    return tf.reshape(spread, [spread.shape[1], spread.shape[2], c, f])


def rotate_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """(KH, KW, C, F) -> the 180°-rotated kernel with swapped channels, (KH, KW, F, C)."""
    return tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])


def input_grad_from_rotated(
    dilated_dy: tf.Tensor,
    rotated: tf.Tensor,
    input_hw: Tuple[int, int],
    pads: Tuple[AxisPadding, AxisPadding],
) -> tf.Tensor:
    """The stride-1 full convolution that gives dx.

    Args:
        dilated_dy: ``_dilate(dy, strides)``, (N, (HO-1)*SH+1, (WO-1)*SW+1, F).
        rotated: ``rotate_kernel(kernel)``, (KH, KW, F, C), in dy's dtype.
        input_hw, pads: (H, W) and ``spatial_padding`` of the forward.

    Returns:
        dx: (N, H, W, C).
    """
    explicit = [[0, 0]]
    for axis, (size, pad) in enumerate(zip(input_hw, pads)):
        k = rotated.shape[axis]
        before = k - 1 - pad.before
        # The full convolution is (HO-1)*S + K long; rows past it (VALID
        # leftovers) got no gradient, which the extra zero padding provides.
        after = size + k - 1 - dilated_dy.shape[1 + axis] - before
        explicit.append([before, after])
    explicit.append([0, 0])
    return tf.nn.conv2d(dilated_dy, rotated, strides=1, padding=explicit)


class KernelGradPlan(NamedTuple):
    """How dw is computed for one convolution (static, fixed at trace time)."""

    explicit: Tuple[Tuple[int, int], ...]  # padding of x, per NHWC axis
    crop_hw: Tuple[int, int]  # rows/columns of x that any window reads
    chunks: Tuple[Optional[int], ...]  # batch chunk sizes, one conv each
    strides: Tuple[int, int]
    in_xla: bool  # compute dw inside the XLA backward prologue


def plan_kernel_grad(x_shape, kernel_hw, strides, pads) -> KernelGradPlan:
    explicit = [[0, 0]]
    crop = []
    for axis, pad in enumerate(pads):
        # Pad only as far as the last kernel row reaches, so that the output
        # is exactly KH x KW.
        reach = (pad.out - 1) * strides[axis] + kernel_hw[axis]
        after, cut = _pad_or_crop_amount(reach - x_shape[1 + axis] - pad.before)
        explicit.append([pad.before, after])
        crop.append(x_shape[1 + axis] - cut)
    explicit.append([0, 0])
    chunks = tuple(_batch_chunks(x_shape[0], x_shape[3], pads[0].out * pads[1].out))
    return KernelGradPlan(tuple(map(tuple, explicit)), tuple(crop), chunks, tuple(strides),
                          in_xla=x_shape[3] < _DW_MIN_CHANNELS_TO_SPLIT)


def kernel_grad_operands(x: tf.Tensor, dy: tf.Tensor, plan: KernelGradPlan):
    """x as (C, H, W, n) and dy as (HO, WO, n, F), one pair per batch chunk.

    dw is the correlation of the padded input with dy,
    ``dw[i, j, c, f] = Σ_{n,p,q} x_pad[n, p*SH + i, q*SW + j, c] dy[n, p, q, f]``:
    a forward convolution of x viewed as (C, H, W, N) with dy viewed as a
    (HO, WO, N, F) filter dilated by the stride (``kernel_grad_partials``),
    summed over the chunks and transposed (``kernel_grad_from_partials``).
    """
    x = x[:, : plan.crop_hw[0], : plan.crop_hw[1], :]
    if len(plan.chunks) == 1:
        return [tf.transpose(x, [3, 1, 2, 0])], [tf.transpose(dy, [1, 2, 0, 3])]
    return ([tf.transpose(part, [3, 1, 2, 0]) for part in tf.split(x, plan.chunks, axis=0)],
            [tf.transpose(part, [1, 2, 0, 3]) for part in tf.split(dy, plan.chunks, axis=0)])


def kernel_grad_partials(x_parts, dy_parts, plan: KernelGradPlan) -> List[tf.Tensor]:
    """The forward convolution x_t ⋆ dy_t of each chunk, as (C, KH, KW, F)."""
    return [
        tf.nn.conv2d(x_t, dy_t, strides=1, padding=[list(p) for p in plan.explicit],
                     dilations=list(plan.strides))
        for x_t, dy_t in zip(x_parts, dy_parts)
    ]


def kernel_grad_from_partials(partials: Sequence[tf.Tensor]) -> tf.Tensor:
    """Σ of the chunks' (C, KH, KW, F) partial dw, as (KH, KW, C, F)."""
    dw_t = partials[0] if len(partials) == 1 else tf.add_n(list(partials))
    return tf.transpose(dw_t, [1, 2, 0, 3])


# Measured with oneDNN on AVX-512 (TF 2.21): the dw convolution, whose filter
# is dy viewed as (HO, WO, N, F), runs ~2x slower per example once that
# filter's HO*WO*N passes ~8K elements (e.g. N > 48 at 14x14), unless C is
# tiny (first layer), where one big convolution is fastest. Splitting the batch
# into chunks under the limit and adding the partial dw keeps the fast kernel.
# With C that small, XLA's convolution beats oneDNN's (0.8 vs 1.4 ms for the
# 28x28x1 MNIST layer), so those layers compute dw inside the XLA prologue.
_DW_FILTER_ELEMENTS = 8192
_DW_MIN_CHANNELS_TO_SPLIT = 8


def _batch_chunks(batch: Optional[int], channels: int, out_area: int) -> List[Optional[int]]:
    """Near-equal batch chunk sizes for the dw convolution; [batch] for no split."""
    if batch is None or channels < _DW_MIN_CHANNELS_TO_SPLIT:
        return [batch]
    per_chunk = max(1, _DW_FILTER_ELEMENTS // out_area)
    count = -(-batch // per_chunk)
    base, extra = divmod(batch, count)
    return [base + 1] * extra + [base] * (count - extra)


def _weighted_op(forward, backward, has_bias):
    """Wraps forward/backward of a layer with weights as a custom-gradient op.

    ``forward(x, kernel, bias_or_None) -> (y, saved)``;
    ``backward(dy, saved) -> (dx, dkernel, dbias_or_None)``. Inputs are passed
    positionally (keyword calls skip the custom gradient in eager mode) and one
    gradient is returned per input.
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


def _activate(y: tf.Tensor, activation: Optional[str]) -> tf.Tensor:
    # Plain tf.nn ops in the forward let Grappler fuse MatMul/Conv2D + BiasAdd
    # + Relu into one oneDNN call, as it does for stock Keras layers.
    return tf.nn.relu(y) if activation == "relu" else y


# One XLA computation reads dy and x once and writes everything the
# convolution's backward needs from them: dy masked by the ReLU and dilated by
# the stride (dx's input), the rotated kernel, x and dy transposed (and split)
# for dw, dy summed for db. Unfused, these are half a dozen passes over the
# tensors, ~15% of a training step; and TensorFlow's Reverse/Transpose kernels
# spend ~0.3 ms each on even a small kernel, which XLA does in microseconds.
@tf.function(jit_compile=True)
def _conv_backward_prologue(x, y, dy, k, relu: bool, acc_name: str, plan: KernelGradPlan):
    """Returns dx's operands (dilated dy, rotated kernel), dw's operands, db."""
    if relu:
        dy = _relu_mask(y, dy)
    dy_acc = tf.cast(dy, acc_name)
    operands = kernel_grad_operands(tf.cast(x, acc_name), dy_acc, plan)
    return (_input_grad_operands(dy, k, plan.strides), operands,
            tf.reduce_sum(dy_acc, axis=[0, 1, 2]))


# For thin inputs (the first layer), dw is computed inside XLA. That layer's dx
# is usually not needed (its input is data) and its computation is pruned from
# the graph, so dx's operands come from a separate call instead of being
# written by the prologue for nothing.
@tf.function(jit_compile=True)
def _conv_backward_prologue_with_kernel_grad(x, y, dy, relu: bool, acc_name: str,
                                             kernel_dtype: str, plan: KernelGradPlan):
    """Returns dw (KH, KW, C, F) in the kernel's dtype and db, for plan.in_xla."""
    if relu:
        dy = _relu_mask(y, dy)
    dy_acc = tf.cast(dy, acc_name)
    partials = kernel_grad_partials(*kernel_grad_operands(tf.cast(x, acc_name), dy_acc, plan),
                                    plan)
    return _kernel_grad(partials, kernel_dtype), tf.reduce_sum(dy_acc, axis=[0, 1, 2])


@tf.function(jit_compile=True)
def _conv_input_grad_operands(y, dy, k, relu: bool, strides: Tuple[int, int]):
    """dx's operands alone: dy masked and dilated, and the rotated kernel."""
    if relu:
        dy = _relu_mask(y, dy)
    return _input_grad_operands(dy, k, strides)


def _input_grad_operands(dy, k, strides):
    """(dy dilated by the stride, rotated kernel): what ``input_grad_from_rotated`` takes."""
    return _dilate(dy, strides), rotate_kernel(k)


def _kernel_grad(partials, kernel_dtype: str):
    """dw (KH, KW, C, F) in the kernel's dtype from the chunks' partial dw."""
    return tf.cast(kernel_grad_from_partials(partials), kernel_dtype)


# Σ and transpose of the partial dw: small, but TF's Transpose costs ~0.3 ms.
_kernel_grad_epilogue = tf.function(_kernel_grad, jit_compile=True)


def _conv2d_tf(x, kernel, bias, strides, padding, activation):
    h, w = _static_hw(x, "conv2d")
    kernel_hw = tuple(kernel.shape[:2])
    pads = spatial_padding((h, w), kernel_hw, strides, padding)
    acc = _accumulation_dtype(x.dtype)
    relu = activation == "relu"

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        y = tf.nn.conv2d(x, k, strides=list(strides), padding=padding.upper())
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        y = _activate(y, activation)
        return y, (x, k, kernel, bias, y)

    def backward(dy, saved):
        x, k, kernel, bias, y = saved
        plan = plan_kernel_grad(x.shape, kernel_hw, strides, pads)
        if plan.in_xla:
            dw, db = _conv_backward_prologue_with_kernel_grad(
                x, y, dy, relu, acc.name, kernel.dtype.name, plan)
            dx_operands = _conv_input_grad_operands(y, dy, k, relu, strides)
        else:
            dx_operands, dw_operands, db = _conv_backward_prologue(
                x, y, dy, k, relu, acc.name, plan)
            dw = _kernel_grad_epilogue(kernel_grad_partials(*dw_operands, plan),
                                       kernel.dtype.name)
        dx = input_grad_from_rotated(*dx_operands, (h, w), pads)
        db = None if bias is None else tf.cast(db, bias.dtype)
        return dx, dw, db

    return _weighted_op(forward, backward, bias is not None)(
        *[t for t in (x, kernel, bias) if t is not None]
    )


# ----------------------------------------------------------------------------
# NumPy implementation: the reference run through tf.numpy_function.
# ----------------------------------------------------------------------------


def _np_compute_dtype(dtype) -> np.dtype:
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def _numpy_op(name, np_forward, np_backward, out_shape, inputs, optional_mask):
    """Wraps a reference forward/backward pair as a TF op with a custom gradient.

    ``inputs`` are tensors (None for absent optional ones); the NumPy functions
    receive every present input as an array in float32/float64 and return the
    output, resp. one gradient per present input (None entries skipped).
    """
    present = [t for t in inputs if t is not None]
    x_dtype = present[0].dtype

    def as_arrays(arrays):
        return [np.asarray(a).astype(_np_compute_dtype(a.dtype)) for a in arrays]

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


def _conv2d_numpy(x, kernel, bias, strides, padding):
    h, w = _static_hw(x, "conv2d")
    pads = spatial_padding((h, w), kernel.shape[:2], strides, padding)
    out_shape = [x.shape[0], pads[0].out, pads[1].out, kernel.shape[3]]
    has_bias = bias is not None

    def split(arrays):
        return (arrays[0], arrays[1], arrays[2] if has_bias else None)

    def forward(*arrays):
        xa, wa, ba = split(arrays)
        return reference.conv2d_forward(xa, wa, ba, strides, padding)[0]

    def backward(dy, *arrays):
        xa, wa, ba = split(arrays)
        _, cache = reference.conv2d_forward(xa, wa, ba, strides, padding)
        return reference.conv2d_backward(dy, cache)

    return _numpy_op("conv2d_numpy", forward, backward, out_shape,
                     [x, kernel, bias], [True, True, has_bias])


def conv2d(
    x: tf.Tensor,
    kernel: tf.Tensor,
    bias: Optional[tf.Tensor] = None,
    strides: IntOrPair = 1,
    padding: str = "valid",
    activation: Optional[str] = None,
    impl: str = "tf",
) -> tf.Tensor:
    """2-D convolution (cross-correlation) with a hand-written gradient.

    Args:
        x: (N, H, W, C), float16/bfloat16/float32/float64.
        kernel: (KH, KW, C, F); cast to x's dtype for the forward.
        bias: (F,) or None.
        strides: int or (SH, SW).
        padding: "valid" (HO = (H - KH) // SH + 1) or "same" (HO = ceil(H / SH),
            TensorFlow's padding rule).
        activation: None or "relu", fused into the op.
        impl: "tf" (TF ops, any device, XLA) or "numpy" (the NumPy reference via
            ``tf.numpy_function``: CPU only, slow, no XLA, not exportable).

    Returns:
        (N, HO, WO, F) in x's dtype.

    Raises:
        ValueError: on bad ranks, channel mismatch, bad strides/padding/impl.
    """
    strides = normalize_tuple(strides, "strides")
    padding = normalize_padding(padding)
    activation = normalize_activation(activation)
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    _static_hw(x, "conv2d")
    if kernel.shape.rank != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            "conv2d expects a kernel of shape (KH, KW, C, F) whose C matches the "
            f"input's channels. Received x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    if bias is not None:
        bias = tf.convert_to_tensor(bias)
        if bias.shape.as_list() != [kernel.shape[3]]:
            raise ValueError(
                f"conv2d expects a bias of shape ({kernel.shape[3]},). "
                f"Received bias.shape={bias.shape}"
            )
    if impl == "numpy":
        return _activate_numpy(_conv2d_numpy(x, kernel, bias, strides, padding), activation)
    return _conv2d_tf(x, kernel, bias, strides, padding, activation)


# ----------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------


def _first_max_in_tiles(x_pad, y, dy, pool_size, out_hw):
    """Pooling gradient when windows tile the input (stride == pool size).

    The padded input reshapes for free to (N, HO, PH, WO, PW, C); offsets are
    scanned in row-major order on the output grid, each taking a window's
    gradient if it holds the maximum and no earlier offset did, and the
    per-offset results are interleaved back into place (no additions).
    """
    (ph, pw), (ho, wo) = pool_size, out_hw
    n, c = tf.shape(dy)[0], dy.shape[3]
    windows = tf.reshape(x_pad[:, : ho * ph, : wo * pw, :], [n, ho, ph, wo, pw, c])
    taken = tf.zeros_like(y, dtype=tf.bool)
    zero = tf.zeros([], dy.dtype)
    routed = []
    for a in range(ph):
        for b in range(pw):
            hit = tf.logical_and(tf.equal(windows[:, :, a, :, b, :], y), tf.logical_not(taken))
            taken = tf.logical_or(taken, hit)
            routed.append(tf.where(hit, dy, zero))
    tiles = tf.reshape(tf.stack(routed, axis=-1), [n, ho, wo, c, ph, pw])
    return tf.reshape(tf.transpose(tiles, [0, 1, 4, 2, 5, 3]), [n, ho * ph, wo * pw, c])


def _first_max_by_offset(x_pad, y, dy, pool_size, strides, out_hw, padded_hw):
    """Pooling gradient for any windows, overlapping ones included.

    Offsets are scanned in row-major order; an offset takes a window's
    gradient when it holds the maximum and no earlier offset did, and each
    offset's share is spread back (dilated by the stride) and added.
    """
    (ho, wo), (sh, sw) = out_hw, strides
    taken = tf.zeros_like(y, dtype=tf.bool)
    zero = tf.zeros([], dy.dtype)
    dx_pad = None
    for a in range(pool_size[0]):
        for b in range(pool_size[1]):
            candidate = x_pad[:, a : a + (ho - 1) * sh + 1 : sh, b : b + (wo - 1) * sw + 1 : sw, :]
            hit = tf.logical_and(tf.equal(candidate, y), tf.logical_not(taken))
            taken = tf.logical_or(taken, hit)
            spread = _dilate(tf.where(hit, dy, zero), strides)
            spread = tf.pad(spread, [
                [0, 0],
                [a, padded_hw[0] - a - spread.shape[1]],
                [b, padded_hw[1] - b - spread.shape[2]],
                [0, 0],
            ])
            dx_pad = spread if dx_pad is None else dx_pad + spread
    return dx_pad


# XLA fuses the compares, selects and broadcasts below into a few loops, 3-4x
# faster than TensorFlow's kernels one at a time on CPU; it compiles once per
# input shape, also when the surrounding graph is not compiled.
@tf.function(jit_compile=True)
def max_pool2d_input_grad(
    x: tf.Tensor,
    y: tf.Tensor,
    dy: tf.Tensor,
    pool_size: Tuple[int, int],
    strides: Tuple[int, int],
    pads: Tuple[AxisPadding, AxisPadding],
) -> tf.Tensor:
    """dx of max pooling: each window's dy goes to its first maximum.

    "First" is in row-major order within the window (TensorFlow's choice on
    ties); where windows overlap, the gradients add up.

    Args:
        x: forward input, (N, H, W, C).
        y: forward output, (N, HO, WO, C).
        dy: upstream gradient, (N, HO, WO, C).
        pool_size: (PH, PW). strides: (SH, SW). pads: ``spatial_padding``.

    Returns:
        dx: (N, H, W, C).
    """
    (ho, top, bottom), (wo, left, right) = pads
    h, w = x.shape[1], x.shape[2]
    padded_hw = (h + top + bottom, w + left + right)
    x_pad = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]],
                   constant_values=float("-inf"))
    if tuple(strides) == tuple(pool_size):
        dx_pad = _first_max_in_tiles(x_pad, y, dy, pool_size, (ho, wo))
        # VALID pooling may leave rows/columns that no window covers.
        dx_pad = tf.pad(dx_pad, [[0, 0], [0, padded_hw[0] - ho * strides[0]],
                                 [0, padded_hw[1] - wo * strides[1]], [0, 0]])
    else:
        dx_pad = _first_max_by_offset(x_pad, y, dy, pool_size, strides, (ho, wo), padded_hw)
    return dx_pad[:, top : top + h, left : left + w, :]


def _max_pool2d_tf(x, pool_size, strides, padding):
    pads = spatial_padding(_static_hw(x, "max_pool2d"), pool_size, strides, padding)

    @tf.custom_gradient
    def pool(x):
        y = tf.nn.max_pool2d(x, list(pool_size), list(strides), padding.upper())

        def grad(dy):
            return max_pool2d_input_grad(x, y, dy, pool_size, strides, pads)

        return y, grad

    return pool(x)


def _max_pool2d_numpy(x, pool_size, strides, padding):
    pads = spatial_padding(_static_hw(x, "max_pool2d"), pool_size, strides, padding)
    out_shape = [x.shape[0], pads[0].out, pads[1].out, x.shape[3]]

    def forward(xa):
        return reference.max_pool2d_forward(xa, pool_size, strides, padding)[0]

    def backward(dy, xa):
        _, cache = reference.max_pool2d_forward(xa, pool_size, strides, padding)
        return [reference.max_pool2d_backward(dy, cache)]

    return _numpy_op("max_pool2d_numpy", forward, backward, out_shape, [x], [True])


def max_pool2d(
    x: tf.Tensor,
    pool_size: IntOrPair = 2,
    strides: Optional[IntOrPair] = None,
    padding: str = "valid",
    impl: str = "tf",
) -> tf.Tensor:
    """2-D max pooling with a hand-written gradient.

    Args:
        x: (N, H, W, C).
        pool_size: int or (PH, PW).
        strides: int or (SH, SW); None means ``pool_size``.
        padding: "valid" (HO = (H - PH) // SH + 1) or "same" (HO = ceil(H / SH));
            padded positions never win a window.
        impl: "tf" or "numpy" (see ``conv2d``).

    Returns:
        (N, HO, WO, C).
    """
    pool_size = normalize_tuple(pool_size, "pool_size")
    strides = pool_size if strides is None else normalize_tuple(strides, "strides")
    padding = normalize_padding(padding)
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    if impl == "numpy":
        return _max_pool2d_numpy(x, pool_size, strides, padding)
    return _max_pool2d_tf(x, pool_size, strides, padding)


# ----------------------------------------------------------------------------
# Dense and ReLU
# ----------------------------------------------------------------------------


# Plain TF ops, not an XLA call: a dense layer's dy is small (batch x units),
# and in a training step the XLA launch cost more than the pass it saves
# (measured ~1.5% of the reference model's step). db is a (1 x rows) ones
# vector times dy: TensorFlow's column-sum kernel shares the thread pool with
# the big dw/dx matmuls running at the same time and was seen waiting ~2 ms
# for them, while a matmul this small finishes at once (~2% of the step).
def _dense_output_grads(y, dy, relu: bool, acc_name: str):
    """dy (rows, M) masked by the ReLU, and Σ dy in the accumulation dtype."""
    if relu:
        dy = _relu_mask(y, dy)
    dy_acc = tf.cast(dy, acc_name)
    ones = tf.ones([1, tf.shape(dy_acc)[0]], dy_acc.dtype)
    return dy, tf.matmul(ones, dy_acc)[0]


def _dense_tf(x, kernel, bias, activation):
    acc = _accumulation_dtype(x.dtype)
    d, m = kernel.shape

    def forward(x, kernel, bias):
        k = tf.cast(kernel, x.dtype)
        rows = tf.reshape(x, [-1, d])
        y = tf.matmul(rows, k)
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        y = _activate(y, activation)
        return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [m]], 0)), (x, k, kernel, bias, rows, y)

    def backward(dy, saved):
        x, k, kernel, bias, rows, y = saved
        dy_rows, db = _dense_output_grads(y, tf.reshape(dy, [-1, m]),
                                          activation == "relu", acc.name)
        dx = tf.reshape(tf.matmul(dy_rows, k, transpose_b=True), tf.shape(x))
        dw = tf.matmul(tf.cast(rows, acc), tf.cast(dy_rows, acc), transpose_a=True)
        db = None if bias is None else tf.cast(db, bias.dtype)
        return dx, tf.cast(dw, kernel.dtype), db

    y = _weighted_op(forward, backward, bias is not None)(
        *[t for t in (x, kernel, bias) if t is not None]
    )
    y.set_shape(x.shape[:-1].concatenate([m]))
    return y


def sparse_dense(x: tf.SparseTensor, kernel: tf.Tensor, bias: Optional[tf.Tensor] = None,
                 activation: Optional[str] = None) -> tf.Tensor:
    """``dense`` for a 2-D sparse x (N, D), as stock Keras takes it.

    Backward: dW = xᵀ·dy touches only the kernel rows of x's non-empty columns,
    so it comes back as ``tf.IndexedSlices`` over those rows (as stock's does);
    db = Σ dy. x is data here: no gradient flows to it.
    """
    activation = normalize_activation(activation)
    kernel = tf.convert_to_tensor(kernel)
    if (x.shape.rank != 2 or kernel.shape.rank != 2
            or x.shape[-1] not in (None, kernel.shape[0])):
        raise ValueError("sparse_dense expects x of shape (N, D) and a kernel of shape (D, M). "
                         f"Received x.shape={x.shape}, kernel.shape={kernel.shape}")
    acc = _accumulation_dtype(x.dtype)

    def forward(_, kernel, bias):
        y = tf.sparse.sparse_dense_matmul(x, tf.cast(kernel, x.dtype))
        if bias is not None:
            y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        y = _activate(y, activation)
        return y, (kernel, bias, y)

    def backward(dy, saved):
        kernel, bias, y = saved
        dy, db = _dense_output_grads(y, dy, activation == "relu", acc.name)
        columns, slot = tf.unique(x.indices[:, 1])
        # Each stored x[r, c] adds x[r, c]·dy[r] to row c of dW.
        contributions = (tf.cast(x.values, acc)[:, None]
                         * tf.gather(tf.cast(dy, acc), x.indices[:, 0]))
        rows = tf.math.unsorted_segment_sum(contributions, slot, tf.size(columns))
        dw = tf.IndexedSlices(tf.cast(rows, kernel.dtype), columns,
                              tf.shape(kernel, out_type=columns.dtype))
        db = None if bias is None else tf.cast(db, bias.dtype)
        return tf.zeros([], x.dtype), dw, db

    # A dense stand-in for x keeps _weighted_op's (x, kernel, bias) signature.
    stand_in = tf.zeros([], x.dtype)
    return _weighted_op(forward, backward, bias is not None)(
        *[t for t in (stand_in, kernel, bias) if t is not None])


def _dense_numpy(x, kernel, bias):
    has_bias = bias is not None
    out_shape = x.shape[:-1].concatenate([kernel.shape[1]])

    def forward(xa, wa, *ba):
        return reference.affine_forward(xa, wa, ba[0] if ba else None)[0]

    def backward(dy, xa, wa, *ba):
        return reference.affine_backward(dy, (xa, wa, ba[0] if ba else None))

    return _numpy_op("dense_numpy", forward, backward, out_shape,
                     [x, kernel, bias], [True, True, has_bias])


def dense(
    x: tf.Tensor,
    kernel: tf.Tensor,
    bias: Optional[tf.Tensor] = None,
    activation: Optional[str] = None,
    impl: str = "tf",
) -> tf.Tensor:
    """Affine layer on the last axis with a hand-written gradient.

    Args:
        x: (..., D), any rank ≥ 2.
        kernel: (D, M). bias: (M,) or None.
        activation: None or "relu", fused into the op.
        impl: "tf" or "numpy" (see ``conv2d``).

    Returns:
        (..., M) = x · kernel + bias.
    """
    activation = normalize_activation(activation)
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    if kernel.shape.rank != 2 or x.shape.rank is None or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            "dense expects x of shape (..., D) and a kernel of shape (D, M). "
            f"Received x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    if bias is not None:
        bias = tf.convert_to_tensor(bias)
    if impl == "numpy":
        return _activate_numpy(_dense_numpy(x, kernel, bias), activation)
    return _dense_tf(x, kernel, bias, activation)


def softmax(z: tf.Tensor) -> tf.Tensor:
    """Softmax over the last axis with a hand-written gradient: dz = y ⊙ (dy − Σ dy ⊙ y).

    In a graph the output carries its logits as ``_keras_logits``, as Keras's
    own softmax does, so cross-entropy losses can start from the logits.
    """
    z = tf.convert_to_tensor(z)

    @tf.custom_gradient
    def softmax_op(z):
        y = tf.nn.softmax(z)

        def grad(dy):
            return y * (dy - tf.reduce_sum(dy * y, axis=-1, keepdims=True))

        return y, grad

    y = softmax_op(z)
    try:
        y._keras_logits = z
    except AttributeError:  # eager tensors take no attributes (nor does Keras's softmax)
        pass
    return y


def _activate_numpy(y: tf.Tensor, activation: Optional[str]) -> tf.Tensor:
    return relu(y, impl="numpy") if activation == "relu" else y


def relu(x: tf.Tensor, impl: str = "tf") -> tf.Tensor:
    """max(x, 0) with a hand-written gradient: dx = dy where the output is > 0."""
    impl = normalize_impl(impl)
    x = tf.convert_to_tensor(x)
    if impl == "numpy":
        return _numpy_op(
            "relu_numpy",
            lambda xa: reference.relu_forward(xa)[0],
            lambda dy, xa: [reference.relu_backward(dy, xa)],
            x.shape, [x], [True],
        )

    @tf.custom_gradient
    def relu_op(x):
        y = tf.maximum(x, tf.zeros([], x.dtype))

        def grad(dy):
            return _relu_grad(y, dy)

        return y, grad

    return relu_op(x)


def _relu_mask(y: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """ReLU backward: dy where the output y is positive, else 0."""
    return tf.where(y > 0, dy, tf.zeros([], dy.dtype))


# One fused XLA loop instead of a compare and a select over the tensor.
_relu_grad = tf.function(_relu_mask, jit_compile=True)
