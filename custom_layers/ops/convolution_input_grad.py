"""dx of a 2-D convolution, three hand-written ways; which one runs is fixed at trace time.

dx is the full convolution of the stride-dilated dy with the 180°-rotated
kernel (channels swapped). Its forms:

* ``full`` (stride 1): exactly that, one forward convolution (dilated as
  the forward's kernel is).
* ``subpixel`` (stride > 1): the dilated dy is mostly zeros, so instead each
  output phase (r_h, r_w) of dx (rows ≡ r_h, columns ≡ r_w mod the stride)
  is a stride-1 convolution of the undilated dy with the rotated sub-kernel
  ``w[r_h::SH, r_w::SW]``. All phases are one convolution whose output
  channels are (r_h, r_w, c), interleaved back into rows and columns after:
  about SH·SW times fewer multiplications than the dilated form.
* ``gemm`` (1×1 kernels): one matrix product dy · Wᵀ over N·HO·WO rows,
  spread by the stride.

The products run in dy's dtype (float16/bfloat16 under mixed precision),
as stock's do.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import tensorflow as tf

from custom_layers.ops.activations import relu_mask
from custom_layers.ops.custom_op import dilate
from custom_layers.ops.shapes import Pads, full_convolution_padding, window_span

METHODS = ("full", "subpixel", "gemm")


class InputGradPlan(NamedTuple):
    """How dx is computed for one convolution (static, fixed at trace time)."""

    method: str  # one of METHODS
    input_hw: Tuple[int, int]
    kernel_hw: Tuple[int, int]
    strides: Tuple[int, int]
    pads: Pads
    dilation: Tuple[int, int] = (1, 1)


def plan_input_grad(input_hw: Tuple[int, int], kernel_hw: Tuple[int, int],
                    strides: Tuple[int, int], pads: Pads,
                    dilation: Tuple[int, int] = (1, 1)) -> InputGradPlan:
    """dx's method: ``gemm`` for 1×1 kernels, ``subpixel`` for strides, else ``full``
    (strides and dilation are never both above 1, as in TensorFlow)."""
    if tuple(kernel_hw) == (1, 1):
        method = "gemm"
    elif tuple(strides) != (1, 1):
        method = "subpixel"
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
# subpixel: one convolution of dy with the stride's phases as channels
# ----------------------------------------------------------------------------


class _PhaseAxis(NamedTuple):
    """One spatial axis of the sub-pixel form."""

    taps: int  # J = ceil(K / S): taps of each phase's sub-kernel
    dy_before: int  # zeros before dy (negative: never)
    dy_keep: int  # rows of dy kept (the rest reach only the padding)
    dy_after: int
    phase_rows: int  # M: rows of each phase computed
    offset: int  # first row of dx in the interleaved result


def _phase_axis(size: int, k: int, s: int, before: int, out: int) -> _PhaseAxis:
    # dx_pad[m*s + r] = Σ_j dy[m - j] w[j*s + r]: for m from before // s to the
    # last m whose phase rows reach dx, a correlation of dy (J - 1 - m_lo zeros
    # before) with the reversed sub-kernel.
    taps = -(-k // s)
    m_lo = before // s
    m_hi = -(-(before + size) // s) - 1
    rows = m_hi - m_lo + 1
    dy_before = taps - 1 - m_lo
    after = rows + taps - 1 - out - dy_before
    keep = out + min(after, 0)
    return _PhaseAxis(taps, dy_before, keep, max(after, 0), rows, before - m_lo * s)


def phase_kernel(k: tf.Tensor, strides: Tuple[int, int]) -> tf.Tensor:
    """(KH, KW, C, F) -> (JH, JW, F, SH·SW·C): each phase's rotated sub-kernel."""
    kh, kw, c, f = k.shape
    sh, sw = strides
    jh, jw = -(-kh // sh), -(-kw // sw)
    k = tf.pad(k, [[0, jh * sh - kh], [0, jw * sw - kw], [0, 0], [0, 0]])
    k = tf.reverse(tf.reshape(k, [jh, sh, jw, sw, c, f]), axis=[0, 2])
    return tf.reshape(tf.transpose(k, [0, 2, 5, 1, 3, 4]), [jh, jw, f, sh * sw * c])


@tf.function(jit_compile=True)
def _subpixel_operands(y, dy, k, relu: bool, plan: InputGradPlan):
    dy = _masked(y, dy, relu)
    axes = [_phase_axis(*a) for a in _axes(plan)]
    dy = dy[:, : axes[0].dy_keep, : axes[1].dy_keep, :]
    return dy, phase_kernel(k, plan.strides)


@tf.function(jit_compile=True)
def _subpixel_interleave(phases, plan: InputGradPlan):
    sh, sw = plan.strides
    ah, aw = [_phase_axis(*a) for a in _axes(plan)]
    n = tf.shape(phases)[0]
    c = phases.shape[3] // (sh * sw)
    t = tf.reshape(phases, [n, ah.phase_rows, aw.phase_rows, sh, sw, c])
    t = tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [n, ah.phase_rows * sh, aw.phase_rows * sw, c])
    h, w = plan.input_hw
    return t[:, ah.offset : ah.offset + h, aw.offset : aw.offset + w, :]


def _axes(plan: InputGradPlan):
    return [(plan.input_hw[a], plan.kernel_hw[a], plan.strides[a], plan.pads[a].before,
             plan.pads[a].out) for a in range(2)]


def _subpixel(y, dy, k, relu, plan: InputGradPlan):
    dy, phase_k = _subpixel_operands(y, dy, k, relu, plan)
    ah, aw = [_phase_axis(*a) for a in _axes(plan)]
    padding = [[0, 0], [ah.dy_before, ah.dy_after], [aw.dy_before, aw.dy_after], [0, 0]]
    return _subpixel_interleave(tf.nn.conv2d(dy, phase_k, strides=1, padding=padding), plan)


# ----------------------------------------------------------------------------
# gemm: 1x1 kernels
# ----------------------------------------------------------------------------


@tf.function(jit_compile=True)
def _gemm_operand(y, dy, relu: bool):
    return tf.reshape(_masked(y, dy, relu), [-1, dy.shape[3]])


@tf.function(jit_compile=True)
def _gemm_spread(dx, plan: InputGradPlan):
    # Each row of the product belongs at (p*SH, q*SW); rows and columns the
    # stride skips (and VALID leftovers) get zeros.
    dx = dilate(dx, plan.strides)
    h, w = plan.input_hw
    return tf.pad(dx, [[0, 0], [0, h - dx.shape[1]], [0, w - dx.shape[2]], [0, 0]])


def _gemm(y, dy, k, relu, plan: InputGradPlan):
    da = _gemm_operand(y, dy, relu) if relu else tf.reshape(dy, [-1, dy.shape[3]])
    dx = tf.matmul(da, tf.reshape(k, k.shape[2:]), transpose_b=True)
    dx = tf.reshape(dx, [tf.shape(dy)[0], dy.shape[1], dy.shape[2], k.shape[2]])
    if plan.strides == (1, 1) and tuple(dy.shape[1:3]) == plan.input_hw:
        return dx
    return _gemm_spread(dx, plan)


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
    if plan.method == "subpixel":
        return _subpixel(y, dy, k, relu, plan)
    return _full(y, dy, k, relu, plan)
