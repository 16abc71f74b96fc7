"""dw of a 2-D convolution, three hand-written ways; which one runs is fixed at trace time.

``dw[i, j, c, f] = Σ_{n,p,q} x_pad[n, p*SH + i, q*SW + j, c] dy[n, p, q, f]``,
the correlation of the padded input with dy. Its forms:

* ``gemm`` (1×1 kernels): one matrix product, x (strided) as (N·HO·WO, C)
  transposed times dy as (N·HO·WO, F).
* ``taps`` (stride 1): one matrix product per kernel tap. x is padded onto
  the grid (HO + KH - 1, WO + KW - 1) and dy onto the same grid with zeros,
  both flattened to rows; then tap (i, j) is the product of the rows of x
  shifted by ``i * grid_width + j`` with the rows of dy. The shifts are
  views (no copies) and no shifted row crosses into the next image, because
  dy is zero wherever it would.
* ``conv``: one forward convolution of x viewed as (C, H, W, N) with dy
  viewed as a (HO, WO, N, F) filter dilated by the stride, split into batch
  chunks whose partial dw are added (see ``_CONV_FILTER_BYTES``); for
  thin inputs (C < 8) inside XLA (``conv_xla``).

Operands stay in x's dtype except float16, which is widened to float32 so
that a sum over a large batch cannot overflow; bfloat16 products run in
bfloat16 (AMX, GPUs) and every partial sum is added in float32.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from custom_layers.ops.activations import relu_mask
from custom_layers.ops.custom_op import accumulation_dtype
from custom_layers.ops.shapes import Pads, window_span

METHODS = ("gemm", "taps", "conv", "conv_xla")


class KernelGradPlan(NamedTuple):
    """How dw is computed for one convolution (static, fixed at trace time)."""

    method: str  # one of METHODS
    explicit: Tuple[Tuple[int, int], ...]  # padding of x, per NHWC axis
    crop_hw: Tuple[int, int]  # rows/columns of x that any window reads
    chunks: Tuple[Optional[int], ...]  # batch chunk sizes of "conv", one conv each
    strides: Tuple[int, int]
    kernel_hw: Tuple[int, int]
    dilation: Tuple[int, int] = (1, 1)


# Measured with oneDNN on AVX-512 (TF 2.21, docs/performance.md): the dw
# convolution, whose filter is dy viewed as (HO, WO, N, F), slows down once
# one output channel's slice of that filter (HO*WO*N values) passes ~8 KB,
# unless C is tiny (first layer), where one big convolution is fastest.
# Splitting the batch into chunks under the limit and adding the partial dw
# keeps the fast kernel. With C that small, XLA's convolution beats oneDNN's
# (0.8 vs 1.4 ms for the 28x28x1 MNIST layer), so those layers compute dw
# inside XLA.
_CONV_FILTER_BYTES = 8192
_THIN_CHANNELS = 8
# "taps" multiplies over the padded grid, so it wastes (grid area / output
# area - 1) of its work on zeros, and its products are C x F: it beat "conv"
# in float32 where the waste is small and the products are large (C and F
# both >= 128) or many (maps of >= 1024 pixels). Under float16 (operands
# widened to float32), "conv" kept up except on large maps. bfloat16 always
# takes "taps" at stride 1: its "conv" gave wrong dw on AMX (_choose_method).
_TAPS_MAX_GRID_RATIO = 1.35
_TAPS_MIN_CHANNELS = 128
_TAPS_MIN_AREA = 1024
_TAPS_MIN_AREA_FLOAT16 = 2048


def operand_dtype(dtype: tf.DType) -> tf.DType:
    """The dtype dw's products run in: float16 widened to float32, others kept."""
    return tf.float32 if dtype == tf.float16 else dtype


def _batch_chunks(batch: Optional[int], channels: int, out_area: int,
                  itemsize: int) -> List[Optional[int]]:
    """Near-equal batch chunk sizes for the dw convolution; [batch] for no split."""
    if batch is None or batch == 0 or channels < _THIN_CHANNELS:
        return [batch]
    per_chunk = max(1, _CONV_FILTER_BYTES // (itemsize * out_area))
    count = -(-batch // per_chunk)
    base, extra = divmod(batch, count)
    return [base + 1] * extra + [base] * (count - extra)


def _choose_method(x_shape, filters, kernel_hw, spans, strides, out_hw, dtype: tf.DType) -> str:
    if tuple(kernel_hw) == (1, 1):
        return "gemm"
    if x_shape[3] < _THIN_CHANNELS:
        return "conv_xla"
    if tuple(strides) != (1, 1):
        return "conv"
    area = out_hw[0] * out_hw[1]
    grid = (out_hw[0] + spans[0] - 1) * (out_hw[1] + spans[1] - 1)
    if dtype == tf.bfloat16:
        # oneDNN's bfloat16 convolution with dy as the filter returned a dw off by
        # ~100% normwise on an AMX Xeon (16x32x32x16, batch chunks of 4): taps only.
        return "taps"
    if dtype == tf.float16:
        return "taps" if area >= _TAPS_MIN_AREA_FLOAT16 else "conv"
    large = min(x_shape[3], filters) >= _TAPS_MIN_CHANNELS or area >= _TAPS_MIN_AREA
    return "taps" if grid <= _TAPS_MAX_GRID_RATIO * area and large else "conv"


def plan_kernel_grad(x_shape: Sequence[Optional[int]], kernel_shape: Sequence[int],
                     strides: Tuple[int, int], pads: Pads,
                     dtype: tf.DType = tf.float32,
                     dilation: Tuple[int, int] = (1, 1)) -> KernelGradPlan:
    """dw's method, padding, crop and batch chunks for x (N, H, W, C), the kernel
    (KH, KW, C, F), and the forward's pads."""
    kernel_hw, filters = tuple(kernel_shape[:2]), kernel_shape[3]
    explicit = [[0, 0]]
    crop = []
    spans = tuple(window_span(k, d) for k, d in zip(kernel_hw, dilation))
    for axis, pad in enumerate(pads):
        # Pad only as far as the last kernel row reaches, so that the output
        # is exactly KH x KW; crop what no window reads (VALID leftovers).
        reach = (pad.out - 1) * strides[axis] + spans[axis]
        needed_after = reach - x_shape[1 + axis] - pad.before
        explicit.append([pad.before, max(needed_after, 0)])
        crop.append(x_shape[1 + axis] - max(-needed_after, 0))
    explicit.append([0, 0])
    out_hw = (pads[0].out, pads[1].out)
    chunks = tuple(_batch_chunks(x_shape[0], x_shape[3], out_hw[0] * out_hw[1],
                                 operand_dtype(dtype).size))
    method = _choose_method(x_shape, filters, kernel_hw, spans, strides, out_hw, dtype)
    if method == "conv" and x_shape[0] is None and tuple(strides) == (1, 1):
        # An unknown batch cannot be chunked, and one conv with the whole dy as
        # its filter ran at half the speed of the tap GEMMs (which take any N).
        method = "taps"
    return KernelGradPlan(method, tuple(map(tuple, explicit)), tuple(crop), chunks,
                          tuple(strides), tuple(kernel_hw), tuple(dilation))


def _bias_grad(dy):
    """db = Σ dy over batch and space (float32 for float16/bfloat16)."""
    return tf.reduce_sum(tf.cast(dy, accumulation_dtype(dy.dtype)), axis=[0, 1, 2])


def _masked(y, dy, relu: bool):
    """dy through the fused ReLU, and db."""
    if relu:
        dy = relu_mask(y, dy)
    return dy, _bias_grad(dy)


# ----------------------------------------------------------------------------
# gemm: 1x1 kernels
# ----------------------------------------------------------------------------


@tf.function(jit_compile=True)
def _gemm_x(x, operand: str, plan: KernelGradPlan):
    sh, sw = plan.strides
    x = x[:, : plan.crop_hw[0] : sh, : plan.crop_hw[1] : sw, :]
    return tf.reshape(tf.cast(x, operand), [-1, x.shape[3]])


@tf.function(jit_compile=True)
def _gemm_dy(y, dy, relu: bool, operand: str):
    dy, db = _masked(y, dy, relu)
    return tf.reshape(tf.cast(dy, operand), [-1, dy.shape[3]]), db


_bias_grad_xla = tf.function(_bias_grad, jit_compile=True)


def _gemm(x, y, dy, relu, kernel_dtype, plan):
    operand = operand_dtype(x.dtype)
    # A reshape in TensorFlow is free; out of an XLA function it is a copy.
    if plan.strides == (1, 1) and tuple(plan.crop_hw) == tuple(x.shape[1:3]) and operand == x.dtype:
        xa = tf.reshape(x, [-1, x.shape[3]])
    else:
        with tf.control_dependencies([dy]):  # not right after the forward: a copy of x
            xa = _gemm_x(x, operand.name, plan)
    if relu or operand != dy.dtype:
        da, db = _gemm_dy(y, dy, relu, operand.name)
    else:
        da, db = tf.reshape(dy, [-1, dy.shape[3]]), _bias_grad_xla(dy)
    dw = tf.matmul(xa, da, transpose_a=True)
    return tf.reshape(tf.cast(dw, kernel_dtype), [1, 1, *dw.shape]), db


# ----------------------------------------------------------------------------
# taps: stride 1, one product per tap over row-shifted views
# ----------------------------------------------------------------------------


@tf.function(jit_compile=True)
def _taps_operands(x, y, dy, relu: bool, operand: str, plan: KernelGradPlan):
    dy, db = _masked(y, dy, relu)
    x = x[:, : plan.crop_hw[0], : plan.crop_hw[1], :]
    x = tf.pad(tf.cast(x, operand), [list(p) for p in plan.explicit])
    (kh, kw), (rate_h, rate_w) = plan.kernel_hw, plan.dilation
    dy = tf.pad(tf.cast(dy, operand),
                [[0, 0], [0, (kh - 1) * rate_h], [0, (kw - 1) * rate_w], [0, 0]])
    return tf.reshape(x, [-1, x.shape[3]]), tf.reshape(dy, [-1, dy.shape[3]]), db


@tf.function(jit_compile=True)
def _taps_epilogue(products, kernel_dtype: str, kernel_hw: Tuple[int, int]):
    dw = tf.stack([tf.cast(p, accumulation_dtype(p.dtype)) for p in products])
    return tf.cast(tf.reshape(dw, [*kernel_hw, *dw.shape[1:]]), kernel_dtype)


def _taps(x, y, dy, relu, kernel_dtype, plan):
    xa, da, db = _taps_operands(x, y, dy, relu, operand_dtype(x.dtype).name, plan)
    (kh, kw), (rate_h, rate_w) = plan.kernel_hw, plan.dilation
    grid_w = plan.crop_hw[1] + sum(plan.explicit[2])
    offsets = [i * rate_h * grid_w + j * rate_w for i in range(kh) for j in range(kw)]
    last = offsets[-1]
    rows = xa.shape[0] - last if xa.shape[0] is not None else tf.shape(xa)[0] - last
    rows = max(rows, 0) if isinstance(rows, int) else tf.maximum(rows, 0)
    dy_rows = da[:rows]
    products = [tf.matmul(xa[o : o + rows], dy_rows, transpose_a=True) for o in offsets]
    return _taps_epilogue(products, kernel_dtype, plan.kernel_hw), db


# ----------------------------------------------------------------------------
# conv: one forward convolution per batch chunk
# ----------------------------------------------------------------------------


def _conv_operands(x, dy, plan: KernelGradPlan):
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


def _conv_partials(x_parts, dy_parts, plan: KernelGradPlan) -> List[tf.Tensor]:
    """The forward convolution x_t ⋆ dy_t of each chunk, as (C, KH, KW, F)."""
    return [
        # Output row i is tap i: x_t read from row i * dilation, dy_t spread by the stride.
        tf.nn.conv2d(x_t, dy_t, strides=list(plan.dilation),
                     padding=[list(p) for p in plan.explicit], dilations=list(plan.strides))
        for x_t, dy_t in zip(x_parts, dy_parts)
    ]


def _sum_partials(partials: Sequence[tf.Tensor], kernel_dtype: str) -> tf.Tensor:
    """Σ of the chunks' (C, KH, KW, F) partial dw in float32, as (KH, KW, C, F)."""
    dw_t = tf.add_n([tf.cast(p, accumulation_dtype(p.dtype)) for p in partials])
    return tf.cast(tf.transpose(dw_t, [1, 2, 0, 3]), kernel_dtype)


@tf.function(jit_compile=True)
def _conv_prologue(x, y, dy, relu: bool, operand: str, plan: KernelGradPlan):
    dy, db = _masked(y, dy, relu)
    return _conv_operands(tf.cast(x, operand), tf.cast(dy, operand), plan), db


# Σ and transpose of the partial dw: small, but TF's Transpose costs ~0.3 ms.
_conv_epilogue = tf.function(_sum_partials, jit_compile=True)


def _conv(x, y, dy, relu, kernel_dtype, plan):
    operands, db = _conv_prologue(x, y, dy, relu, operand_dtype(x.dtype).name, plan)
    return _conv_epilogue(_conv_partials(*operands, plan), kernel_dtype), db


@tf.function(jit_compile=True)
def _conv_xla(x, y, dy, relu: bool, operand: str, kernel_dtype: str, plan: KernelGradPlan):
    dy, db = _masked(y, dy, relu)
    operands = _conv_operands(tf.cast(x, operand), tf.cast(dy, operand), plan)
    return _sum_partials(_conv_partials(*operands, plan), kernel_dtype), db


def kernel_grad(x: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, relu: bool, kernel_dtype: str,
                plan: KernelGradPlan) -> Tuple[tf.Tensor, tf.Tensor]:
    """dw and db of the convolution.

    Args:
        x: the forward's input, (N, H, W, C).
        y: its output (N, HO, WO, F), read only when ``relu`` (the fused ReLU's mask).
        dy: the upstream gradient, (N, HO, WO, F).
        relu: whether the forward applied a ReLU.
        kernel_dtype: dtype name of the kernel variable (dw's dtype).
        plan: ``plan_kernel_grad`` of this convolution.

    Returns:
        dw (KH, KW, C, F) in ``kernel_dtype``, db (F,) in float32 for float16/bfloat16 x, else x's dtype.
    """
    if plan.method == "gemm":
        return _gemm(x, y, dy, relu, kernel_dtype, plan)
    if plan.method == "taps":
        return _taps(x, y, dy, relu, kernel_dtype, plan)
    if plan.method == "conv_xla":
        # XLA's CPU convolutions have no fast low-precision kernel: float32 operands.
        return _conv_xla(x, y, dy, relu, accumulation_dtype(x.dtype).name, kernel_dtype, plan)
    return _conv(x, y, dy, relu, kernel_dtype, plan)
