"""The convolution's backward as forward convolutions: dx, dw's plan and operands, the prologues.

dx is the stride-1 full convolution of the stride-dilated dy with the
180°-rotated kernel (channels swapped). dw is the correlation of the padded input with dy,
``dw[i, j, c, f] = Σ_{n,p,q} x_pad[n, p*SH + i, q*SW + j, c] dy[n, p, q, f]``:
a forward convolution of x viewed as (C, H, W, N) with dy viewed as a
(HO, WO, N, F) filter dilated by the stride. The batch may be split into
chunks whose partial dw are added (see ``_DW_FILTER_ELEMENTS``).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from custom_layers.ops.activations import relu_mask
from custom_layers.ops.custom_op import dilate
from custom_layers.ops.shapes import Pads, full_convolution_padding


class KernelGradPlan(NamedTuple):
    """How dw is computed for one convolution (static, fixed at trace time)."""

    explicit: Tuple[Tuple[int, int], ...]  # padding of x, per NHWC axis
    crop_hw: Tuple[int, int]  # rows/columns of x that any window reads
    chunks: Tuple[Optional[int], ...]  # batch chunk sizes, one conv each
    strides: Tuple[int, int]
    in_xla: bool  # compute dw inside the XLA backward prologue


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
    if batch is None or batch == 0 or channels < _DW_MIN_CHANNELS_TO_SPLIT:
        return [batch]
    per_chunk = max(1, _DW_FILTER_ELEMENTS // out_area)
    count = -(-batch // per_chunk)
    base, extra = divmod(batch, count)
    return [base + 1] * extra + [base] * (count - extra)


def plan_kernel_grad(x_shape: Sequence[Optional[int]], kernel_hw: Tuple[int, int],
                     strides: Tuple[int, int], pads: Pads) -> KernelGradPlan:
    """The padding, crop and batch chunks of dw for x (N, H, W, C) and the forward's pads."""
    explicit = [[0, 0]]
    crop = []
    for axis, pad in enumerate(pads):
        # Pad only as far as the last kernel row reaches, so that the output
        # is exactly KH x KW; crop what no window reads (VALID leftovers).
        reach = (pad.out - 1) * strides[axis] + kernel_hw[axis]
        needed_after = reach - x_shape[1 + axis] - pad.before
        explicit.append([pad.before, max(needed_after, 0)])
        crop.append(x_shape[1 + axis] - max(-needed_after, 0))
    explicit.append([0, 0])
    chunks = tuple(_batch_chunks(x_shape[0], x_shape[3], pads[0].out * pads[1].out))
    return KernelGradPlan(tuple(map(tuple, explicit)), tuple(crop), chunks, tuple(strides),
                          in_xla=x_shape[3] < _DW_MIN_CHANNELS_TO_SPLIT)


def kernel_grad_operands(x: tf.Tensor, dy: tf.Tensor, plan: KernelGradPlan):
    """x as (C, H, W, n) and dy as (HO, WO, n, F), one pair per batch chunk."""
    x = x[:, : plan.crop_hw[0], : plan.crop_hw[1], :]
    if plan.chunks in ((None,), (0,)):
        # A batch that is (or may be, unknown when traced) empty: no convolution
        # takes a filter of depth 0, so one zero example makes it 1; it adds
        # nothing to dw, and with a known batch XLA compiles the pad away.
        extra = tf.maximum(1 - tf.shape(x)[0], 0)
        x = tf.pad(x, [[0, extra], [0, 0], [0, 0], [0, 0]])
        dy = tf.pad(dy, [[0, extra], [0, 0], [0, 0], [0, 0]])
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


def kernel_grad(partials: Sequence[tf.Tensor], kernel_dtype: str) -> tf.Tensor:
    """dw (KH, KW, C, F) in the kernel's dtype from the chunks' partial dw."""
    return tf.cast(kernel_grad_from_partials(partials), kernel_dtype)


# Σ and transpose of the partial dw: small, but TF's Transpose costs ~0.3 ms.
kernel_grad_epilogue = tf.function(kernel_grad, jit_compile=True)


# ----------------------------------------------------------------------------
# dx, and the XLA prologues that prepare dx's and dw's operands
# ----------------------------------------------------------------------------


def rotate_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """(KH, KW, C, F) -> the 180°-rotated kernel with swapped channels, (KH, KW, F, C)."""
    return tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])


def input_grad_from_rotated(dilated_dy: tf.Tensor, rotated: tf.Tensor,
                            input_hw: Tuple[int, int], pads: Pads) -> tf.Tensor:
    """The stride-1 full convolution that gives dx.

    Args:
        dilated_dy: ``dilate(dy, strides)``, (N, (HO-1)*SH+1, (WO-1)*SW+1, F).
        rotated: ``rotate_kernel(kernel)``, (KH, KW, F, C), in dy's dtype.
        input_hw, pads: (H, W) and ``spatial_padding`` of the forward.

    Returns:
        dx: (N, H, W, C).
    """
    explicit = full_convolution_padding(input_hw, rotated.shape[:2], dilated_dy.shape[1:3], pads)
    return tf.nn.conv2d(dilated_dy, rotated, strides=1, padding=explicit)


def _input_grad_operands(dy, k, strides):
    """(dy dilated by the stride, rotated kernel): what ``input_grad_from_rotated`` takes."""
    return dilate(dy, strides), rotate_kernel(k)


# One XLA computation reads dy and x once and writes everything the
# convolution's backward needs from them: dy masked by the ReLU and dilated by
# the stride (dx's input), the rotated kernel, x and dy transposed (and split)
# for dw, dy summed for db. Unfused, these are half a dozen passes over the
# tensors, ~15% of a training step; and TensorFlow's Reverse/Transpose kernels
# spend ~0.3 ms each on even a small kernel, which XLA does in microseconds.
@tf.function(jit_compile=True)
def conv_backward_prologue(x, y, dy, k, relu: bool, acc_name: str, plan: KernelGradPlan):
    """Returns dx's operands (dilated dy, rotated kernel), dw's operands, db."""
    if relu:
        dy = relu_mask(y, dy)
    dy_acc = tf.cast(dy, acc_name)
    operands = kernel_grad_operands(tf.cast(x, acc_name), dy_acc, plan)
    return (_input_grad_operands(dy, k, plan.strides), operands,
            tf.reduce_sum(dy_acc, axis=[0, 1, 2]))


# For thin inputs (the first layer), dw is computed inside XLA. That layer's dx
# is usually not needed (its input is data) and its computation is pruned from
# the graph, so dx's operands come from a separate call instead of being
# written by the prologue for nothing.
@tf.function(jit_compile=True)
def conv_backward_prologue_with_kernel_grad(x, y, dy, relu: bool, acc_name: str,
                                             kernel_dtype: str, plan: KernelGradPlan):
    """Returns dw (KH, KW, C, F) in the kernel's dtype and db, for plan.in_xla."""
    if relu:
        dy = relu_mask(y, dy)
    dy_acc = tf.cast(dy, acc_name)
    partials = kernel_grad_partials(*kernel_grad_operands(tf.cast(x, acc_name), dy_acc, plan),
                                    plan)
    return kernel_grad(partials, kernel_dtype), tf.reduce_sum(dy_acc, axis=[0, 1, 2])


@tf.function(jit_compile=True)
def conv_input_grad_operands(y, dy, k, relu: bool, strides: Tuple[int, int]):
    """dx's operands alone: dy masked and dilated, and the rotated kernel."""
    if relu:
        dy = relu_mask(y, dy)
    return _input_grad_operands(dy, k, strides)
