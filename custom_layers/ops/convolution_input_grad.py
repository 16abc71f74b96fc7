"""dx of a 2-D convolution, hand-written several ways; which one runs is fixed at trace time.

dx is the full convolution of the stride-dilated dy with the 180°-rotated
kernel (channels swapped). Its forms:

* ``full`` (stride 1): exactly that, one forward convolution (dilated as
  the forward's kernel is).
* ``subpixel`` (stride > 1): the dilated dy is mostly zeros, so instead each
  output phase (r_h, r_w) of dx (rows ≡ r_h, columns ≡ r_w mod the stride)
  is a stride-1 convolution of the undilated dy with the rotated sub-kernel
  ``w[r_h::SH, r_w::SW]``, and the phases are interleaved back into rows and
  columns: together exactly the forward's multiplications, where the
  dilated form has SH·SW times as many.
* ``subpixel_stacked`` (stride > 1, thin inputs): the same phases as one
  convolution whose output channels are (r_h, r_w, c), each sub-kernel
  zero-padded in front to the largest one's size.
* ``gemm`` (1×1 kernels): one matrix product dy · Wᵀ over N·HO·WO rows,
  spread by the stride.
* ``fold`` (thin inputs, stride 1): one matrix product of dy (N·HO·WO, F)
  with the kernel as (F, KH·KW·C), whose column block (i, j) is tap
  (i, j)'s share of dx, then those blocks shifted by the tap and summed
  (col2im): a convolution with C < 8 output channels leaves most of a
  vector register idle, this product's KH·KW·C columns do not.

The products run in dy's dtype (float16/bfloat16 under mixed precision),
as stock's do.
"""

from __future__ import annotations

from typing import List, NamedTuple, Sequence, Tuple

import tensorflow as tf

from custom_layers.ops.activations import relu_mask
from custom_layers.ops.custom_op import accumulation_dtype, dilate
from custom_layers.ops.shapes import Pads, full_convolution_padding, window_span

METHODS = ("full", "subpixel", "subpixel_stacked", "gemm", "fold")
# Below this many input channels dx's phases are too thin for oneDNN's
# kernels one by one; stacked as one convolution's output channels they run
# fast despite the zero taps padding them to one size (ResNet-50's stem:
# 1.76x stock's speed stacked, 1.0x one by one).
_STACK_PHASES_BELOW_CHANNELS = 32
# Below this many input channels (first layers) dx's convolution has too few
# output channels to run fast: 0.25x stock for 32x32x3 -> 64 on AVX2, where
# ``fold`` ran 1.4x (docs/performance.md).
_FOLD_BELOW_CHANNELS = 8


class InputGradPlan(NamedTuple):
    """How dx is computed for one convolution (static, fixed at trace time)."""

    method: str  # one of METHODS
    input_hw: Tuple[int, int]
    kernel_hw: Tuple[int, int]
    strides: Tuple[int, int]
    pads: Pads
    dilation: Tuple[int, int] = (1, 1)


def plan_input_grad(input_hw: Tuple[int, int], kernel_shape: Sequence[int],
                    strides: Tuple[int, int], pads: Pads,
                    dilation: Tuple[int, int] = (1, 1)) -> InputGradPlan:
    """dx's method for a kernel (KH, KW, C, F): ``gemm`` for 1×1 kernels,
    ``fold`` for thin C at stride 1, ``subpixel`` (``subpixel_stacked`` for
    thin C) for strides, else ``full``
    (strides and dilation are never both above 1, as in TensorFlow)."""
    kernel_hw = tuple(kernel_shape[:2])
    if kernel_hw == (1, 1):
        method = "gemm"
    elif kernel_shape[2] < _FOLD_BELOW_CHANNELS and tuple(strides) == (1, 1):
        method = "fold"
    elif tuple(strides) != (1, 1):
        stacked = kernel_shape[2] < _STACK_PHASES_BELOW_CHANNELS
        method = "subpixel_stacked" if stacked else "subpixel"
    else:
        method = "full"
    return InputGradPlan(method, tuple(input_hw), tuple(kernel_hw), tuple(strides), pads,
                         tuple(dilation))


def rotate_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """(KH, KW, C, F) -> the 180°-rotated kernel with swapped channels, (KH, KW, F, C)."""
    return tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])


def _masked(y, dy, relu: bool):
    return relu_mask(y, dy) if relu else dy


# ----------------------------------------------------------------------------
# full: one convolution of the dilated dy
# ----------------------------------------------------------------------------


@tf.function(jit_compile=True)
def _full_operands(y, dy, k, relu: bool, strides: Tuple[int, int]):
    """(dy masked and dilated by the stride, rotated kernel)."""
    return dilate(_masked(y, dy, relu), strides), rotate_kernel(k)


def _full(y, dy, k, relu, plan: InputGradPlan):
    dilated_dy, rotated = _full_operands(y, dy, k, relu, plan.strides)
    spans = [window_span(k, d) for k, d in zip(plan.kernel_hw, plan.dilation)]
    explicit = full_convolution_padding(plan.input_hw, spans, dilated_dy.shape[1:3], plan.pads)
    if plan.dilation == (1, 1):
        return tf.nn.conv2d(dilated_dy, rotated, strides=1, padding=explicit)
    # As the forward: space-to-batch for the dilated kernel (no explicit padding there).
    return tf.nn.convolution(tf.pad(dilated_dy, explicit), rotated, padding="VALID",
                             dilations=list(plan.dilation))


# ----------------------------------------------------------------------------
# subpixel: one convolution of dy per phase of the stride
# ----------------------------------------------------------------------------


class _Phase(NamedTuple):
    """One phase r of one spatial axis: dx rows ≡ r (mod the stride)."""

    r: int
    taps: int  # ceil((K - r) / S): the sub-kernel w[r::S]'s length (0: no gradient)
    start: int  # first row of dy it reads
    pad_before: int  # zeros before those rows
    pad_after: int


class _PhaseAxis(NamedTuple):
    rows: int  # M: rows of each phase computed
    offset: int  # first row of dx in the interleaved phases
    end: int  # rows of dy any phase reads (the rest reach only padding)
    phases: Tuple[_Phase, ...]


def _phase_axis(size: int, k: int, s: int, before: int, out: int) -> _PhaseAxis:
    # dx_pad[m*s + r] = Σ_j dy[m - j] w[j*s + r], j < taps_r: for m from
    # before // s to the last m whose rows reach dx, a correlation of dy with
    # the reversed sub-kernel, dy read from row m_lo - taps_r + 1.
    m_lo = before // s
    m_hi = -(-(before + size) // s) - 1
    end = min(out, m_hi + 1)
    phases = []
    for r in range(s):
        taps = max(0, -(-(k - r) // s))
        first = m_lo - taps + 1
        phases.append(_Phase(r, taps, max(first, 0), max(-first, 0), m_hi + 1 - end))
    return _PhaseAxis(m_hi - m_lo + 1, before - m_lo * s, end, tuple(phases))


def phase_axes(plan: InputGradPlan) -> List[_PhaseAxis]:
    """The stride phases of dx's rows and of its columns."""
    return [_phase_axis(plan.input_hw[a], plan.kernel_hw[a], plan.strides[a],
                        plan.pads[a].before, plan.pads[a].out) for a in range(2)]


def _phase_kernels(k, plan: InputGradPlan, stacked: bool):
    """Each phase's rotated sub-kernel (KH', KW', F, C), in (r_h, r_w) order;
    stacked: all zero-padded in front to phase (0, 0)'s size, as one
    (JH, JW, F, SH·SW·C) kernel."""
    ah, aw = phase_axes(plan)
    jh, jw = ah.phases[0].taps, aw.phases[0].taps
    kernels = []
    for ph in ah.phases:
        for pw in aw.phases:
            if ph.taps and pw.taps:
                sub = rotate_kernel(k[ph.r :: plan.strides[0], pw.r :: plan.strides[1]])
                if stacked:
                    sub = tf.pad(sub, [[jh - ph.taps, 0], [jw - pw.taps, 0], [0, 0], [0, 0]])
                kernels.append(sub)
            elif stacked:
                kernels.append(tf.zeros([jh, jw, k.shape[3], k.shape[2]], k.dtype))
    return tf.concat(kernels, axis=3) if stacked else kernels


@tf.function(jit_compile=True)
def _subpixel_operands(y, dy, k, relu: bool, plan: InputGradPlan):
    """dy masked (and cut to the rows any phase reads) and the phases' kernels."""
    ah, aw = phase_axes(plan)
    dy = _masked(y, dy, relu)[:, : ah.end, : aw.end, :]
    return dy, _phase_kernels(k, plan, plan.method == "subpixel_stacked")


@tf.function(jit_compile=True)
def interleave_phases(phases, plan: InputGradPlan):
    """The phases (N, MH, MW, C) in (r_h, r_w) order (None where no tap
    reaches), or all of them as (N, MH, MW, SH·SW·C), interleaved into rows
    and columns and cut to (N, H, W, C)."""
    sh, sw = plan.strides
    ah, aw = phase_axes(plan)
    if len(phases) == 1:
        t = phases[0]
    else:
        present = next(p for p in phases if p is not None)
        t = tf.stack([present * 0 if p is None else p for p in phases], axis=3)
    n = tf.shape(t)[0]
    t = tf.reshape(t, [n, ah.rows, aw.rows, sh, sw, -1])
    t = tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [n, ah.rows * sh, aw.rows * sw, -1])
    h, w = plan.input_hw
    return t[:, ah.offset : ah.offset + h, aw.offset : aw.offset + w, :]


def _phase_conv(dy, kernel, ph: _Phase, pw: _Phase):
    """The stride-1 convolution of the dy rows and columns phases (ph, pw) read."""
    part = dy if ph.start == pw.start == 0 else dy[:, ph.start :, pw.start :, :]
    padding = [[0, 0], [ph.pad_before, ph.pad_after], [pw.pad_before, pw.pad_after], [0, 0]]
    return tf.nn.conv2d(part, kernel, strides=1, padding=padding)


def _subpixel(y, dy, k, relu, plan: InputGradPlan):
    dy, kernels = _subpixel_operands(y, dy, k, relu, plan)
    ah, aw = phase_axes(plan)
    if plan.method == "subpixel_stacked":  # phase (0, 0) reads the most of dy
        return interleave_phases([_phase_conv(dy, kernels, ah.phases[0], aw.phases[0])], plan)
    phases, kernels = [], iter(kernels)
    for ph in ah.phases:
        for pw in aw.phases:
            present = ph.taps and pw.taps
            phases.append(_phase_conv(dy, next(kernels), ph, pw) if present else None)
    return interleave_phases(phases, plan)


# ----------------------------------------------------------------------------
# gemm: 1x1 kernels
# ----------------------------------------------------------------------------


@tf.function(jit_compile=True)
def _masked_rows(y, dy):
    return tf.reshape(relu_mask(y, dy), [-1, dy.shape[3]])


@tf.function(jit_compile=True)
def _gemm_spread(dx, plan: InputGradPlan):
    # Each row of the product belongs at (p*SH, q*SW); rows and columns the
    # stride skips (and VALID leftovers) get zeros.
    dx = dilate(dx, plan.strides)
    h, w = plan.input_hw
    return tf.pad(dx, [[0, 0], [0, h - dx.shape[1]], [0, w - dx.shape[2]], [0, 0]])


def _gemm(y, dy, k, relu, plan: InputGradPlan):
    da = _masked_rows(y, dy) if relu else tf.reshape(dy, [-1, dy.shape[3]])
    dx = tf.matmul(da, tf.reshape(k, k.shape[2:]), transpose_b=True)
    dx = tf.reshape(dx, [tf.shape(dy)[0], dy.shape[1], dy.shape[2], k.shape[2]])
    if plan.strides == (1, 1) and tuple(dy.shape[1:3]) == plan.input_hw:
        return dx
    return _gemm_spread(dx, plan)


# ----------------------------------------------------------------------------
# fold: one matrix product into per-tap columns, shifted and summed
# ----------------------------------------------------------------------------


@tf.function(jit_compile=True)
def _fold_kernel(k):
    """The kernel (KH, KW, C, F) as (F, KH·KW·C)."""
    kernel = tf.transpose(k, [3, 0, 1, 2])
    return tf.reshape(kernel, [kernel.shape[0], -1])


@tf.function(jit_compile=True)
def _fold_taps(columns, plan: InputGradPlan):
    """Σ over taps (i, j) of column block (i, j) of ``columns`` (N, HO, WO, KH·KW·C),
    spread by the stride and placed at row i·DH, column j·DW of the padded
    input, summed in float32 and cut to (N, H, W, C)."""
    (kh, kw), (sh, sw), (rate_h, rate_w) = plan.kernel_hw, plan.strides, plan.dilation
    n, out_h, out_w = tf.shape(columns)[0], columns.shape[1], columns.shape[2]
    dtype = columns.dtype
    columns = tf.reshape(tf.cast(columns, accumulation_dtype(dtype)),
                         [n, out_h, out_w, kh, kw, -1])
    spread_hw = ((out_h - 1) * sh + 1, (out_w - 1) * sw + 1)
    # The padded input's rows and columns any window reaches.
    grid = [(out_h - 1) * sh + window_span(kh, rate_h), (out_w - 1) * sw + window_span(kw, rate_w)]
    total = None
    for i in range(kh):
        for j in range(kw):
            top, left = i * rate_h, j * rate_w
            tap = tf.pad(dilate(columns[:, :, :, i, j, :], plan.strides),
                         [[0, 0], [top, grid[0] - top - spread_hw[0]],
                          [left, grid[1] - left - spread_hw[1]], [0, 0]])
            total = tap if total is None else total + tap
    # Rows of x no window reads (VALID leftovers) get zeros.
    (h, w), pads = plan.input_hw, plan.pads
    total = tf.pad(total, [[0, 0], [0, max(0, pads[0].before + h - grid[0])],
                           [0, max(0, pads[1].before + w - grid[1])], [0, 0]])
    dx = total[:, pads[0].before : pads[0].before + h, pads[1].before : pads[1].before + w, :]
    return tf.cast(dx, dtype)


def _fold(y, dy, k, relu, plan: InputGradPlan):
    # dy's rows stay a free reshape unless masked (an XLA output is a copy).
    rows = _masked_rows(y, dy) if relu else tf.reshape(dy, [-1, dy.shape[3]])
    columns = tf.matmul(rows, _fold_kernel(k))
    columns = tf.reshape(columns, [tf.shape(dy)[0], dy.shape[1], dy.shape[2], -1])
    return _fold_taps(columns, plan)


def input_grad(y: tf.Tensor, dy: tf.Tensor, k: tf.Tensor, relu: bool,
               plan: InputGradPlan) -> tf.Tensor:
    """dx of the convolution.

    Args:
        y: the forward's output (N, HO, WO, F), read only when ``relu``.
        dy: the upstream gradient, (N, HO, WO, F).
        k: the kernel as the forward used it (dy's dtype), (KH, KW, C, F).
        relu: whether the forward applied a ReLU.
        plan: ``plan_input_grad`` of this convolution.

    Returns:
        dx: (N, H, W, C) in dy's dtype.
    """
    if plan.method == "gemm":
        return _gemm(y, dy, k, relu, plan)
    if plan.method in ("subpixel", "subpixel_stacked"):
        return _subpixel(y, dy, k, relu, plan)
    if plan.method == "fold":
        return _fold(y, dy, k, relu, plan)
    return _full(y, dy, k, relu, plan)
