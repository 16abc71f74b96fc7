"""Argument and output-shape rules shared by every op (TensorFlow's padding rule).

TensorFlow pads SAME windows so that ``HO = ceil(H / stride)``; when the total
padding is odd the extra row/column goes at the bottom/right. VALID never pads
and gives ``HO = (H - K) // stride + 1``. A window dilated by D spans
``(K - 1) * D + 1`` cells. Output sizes are computed here and nowhere else.

Also here: the NumPy padding, cropping and window views that the references
build on, so that they pad exactly as the rule says.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PADDINGS = ("valid", "same")
Pair = Tuple[int, int]


class AxisPadding(NamedTuple):
    """Output length and padding for one spatial axis."""

    out: int
    before: int
    after: int


Pads = Tuple[AxisPadding, AxisPadding]


def normalize_padding(padding: str) -> str:
    """Returns ``padding`` lower-cased, or raises ValueError if unsupported."""
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(
            f"padding must be one of {PADDINGS}. Received: padding={padding!r}"
        )
    return padding.lower()


def normalize_tuple(value, name: str, allow_none: bool = False) -> Optional[Pair]:
    """Turns an int or a pair of ints into a pair of positive ints.

    Raises:
        ValueError: if ``value`` is not one or two positive integers.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise ValueError(
            f"{name} must be a positive integer or a tuple of 2 positive "
            f"integers. Received: {name}={value!r}"
        )
    return pair


def normalize_triple(value, name: str) -> Tuple[int, int, int]:
    """Turns an int or 3 ints into 3 positive ints (a 3-D op's strides, sizes).

    Raises:
        ValueError: if ``value`` is not one or three positive integers.
    """
    values = (value,) * 3 if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                   for v in values):
        raise ValueError(f"{name} must be a positive integer or a tuple of 3 positive "
                         f"integers. Received: {name}={value!r}")
    return values


def axis_padding(size: int, window: int, stride: int, padding: str,
                 dilation: int = 1) -> AxisPadding:
    """Output length and (before, after) padding of one axis.

    Args:
        size: input length H.
        window: kernel or pool length K.
        stride: step between windows.
        padding: "valid" or "same".
        dilation: spacing of the window's taps; the window spans (K - 1) * D + 1.

    Returns:
        ``AxisPadding(out, before, after)``. SAME: ``out = ceil(H / stride)``,
        ``before + after = max((out - 1) * stride + span - H, 0)`` with the odd
        one after. VALID: ``out = (H - span) // stride + 1``, no padding.

    Raises:
        ValueError: if a VALID window does not fit in the input.
    """
    span = window_span(window, dilation)
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return AxisPadding(out, total // 2, total - total // 2)
    if size < span:
        raise ValueError(
            f"window of size {span} does not fit in an input of size {size} "
            "with padding='valid'"
        )
    return AxisPadding((size - span) // stride + 1, 0, 0)


def spatial_padding(hw: Sequence[int], window: Sequence[int], strides: Sequence[int],
                    padding: str, dilation: Sequence[int] = (1, 1)) -> Pads:
    """``axis_padding`` for height and width."""
    return tuple(
        axis_padding(s, k, st, padding, d)
        for s, k, st, d in zip(hw, window, strides, dilation)
    )


def window_span(window: int, dilation: int = 1) -> int:
    """Cells a window of ``window`` taps spaced by ``dilation`` covers: (K - 1) * D + 1."""
    return (window - 1) * dilation + 1


def full_convolution_padding(input_hw: Sequence[int], spans: Sequence[int],
                             dilated_dy_hw: Sequence[int], pads: Pads) -> List[List[int]]:
    """Explicit NHWC padding of the stride-dilated dy for the stride-1 full
    convolution with the rotated kernel that gives dx (H, W) back.

    Each side gets ``span - 1 - pad.before`` before; after, whatever makes the
    output H long: the full convolution is (HO-1)*S + span long, and rows past
    it (VALID leftovers) got no gradient, which the extra zeros provide.
    """
    explicit = [[0, 0]]
    for size, span, dy_size, pad in zip(input_hw, spans, dilated_dy_hw, pads):
        before = span - 1 - pad.before
        explicit.append([before, size + span - 1 - dy_size - before])
    explicit.append([0, 0])
    return explicit


def static_hw(shape: Sequence[Optional[int]], op_name: str) -> Pair:
    """(H, W) of an (N, H, W, C) shape, which must be known when an op is traced.

    Raises:
        ValueError: naming ``op_name``, for another rank or an unknown H or W.
    """
    rank = shape.rank if hasattr(shape, "rank") else len(shape)  # TensorShape or tuple
    if rank != 4:
        raise ValueError(
            f"{op_name} expects a 4-D input (N, H, W, C). Received shape {shape}"
        )
    h, w = shape[1], shape[2]
    if h is None or w is None:
        raise ValueError(
            f"{op_name} needs the input's height and width known when it is "
            f"traced. Received shape {shape}"
        )
    return h, w


def pool_geometry(shape: Sequence[Optional[int]], pool_size, strides, padding: str,
                  op_name: str) -> Tuple[Pair, Pair, Pads]:
    """Normalised (pool_size, strides, pads) of a pooling op; strides None = pool_size."""
    hw = static_hw(shape, op_name)
    pool_size = normalize_tuple(pool_size, "pool_size")
    strides = pool_size if strides is None else normalize_tuple(strides, "strides")
    return pool_size, strides, spatial_padding(hw, pool_size, strides, normalize_padding(padding))


# ----------------------------------------------------------------------------
# NumPy views by these rules
# ----------------------------------------------------------------------------


def pad_hw(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """(N, H, W, C) padded as ``pads`` says, with ``value``."""
    (_, th, bh), (_, tw, bw) = pads
    return np.pad(x, ((0, 0), (th, bh), (tw, bw), (0, 0)), constant_values=value)


def padded_shape(shape: Sequence[int], pads: Pads) -> Tuple[int, int, int, int]:
    """The shape ``pad_hw`` gives an (N, H, W, C) array."""
    (_, th, bh), (_, tw, bw) = pads
    return (shape[0], shape[1] + th + bh, shape[2] + tw + bw, shape[3])


def crop_hw(x_pad: np.ndarray, pads: Pads, shape: Sequence[int]) -> np.ndarray:
    """Undoes ``pad_hw``: the (N, H, W, C) interior of a padded array."""
    th, tw = pads[0].before, pads[1].before
    return x_pad[:, th : th + shape[1], tw : tw + shape[2], :]


def window_view(x_pad: np.ndarray, window: Pair, strides: Pair, out_hw: Pair) -> np.ndarray:
    """Strided view (N, HO, WO, C, KH, KW) of every window of a padded array; no copy."""
    windows = sliding_window_view(x_pad, window, axis=(1, 2))
    return windows[:, :: strides[0], :: strides[1]][:, : out_hw[0], : out_hw[1]]
