"""Output sizes and padding amounts, TensorFlow's rule, shared by every op.

TensorFlow pads SAME windows so that ``HO = ceil(H / stride)``; when the total
padding is odd the extra row/column goes at the bottom/right. VALID never pads
and gives ``HO = (H - K) // stride + 1``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple

PADDINGS = ("valid", "same")


class AxisPadding(NamedTuple):
    """Output length and padding for one spatial axis."""

    out: int
    before: int
    after: int


def normalize_padding(padding: str) -> str:
    """Returns ``padding`` lower-cased, or raises ValueError if unsupported."""
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(
            f"padding must be one of {PADDINGS}. Received: padding={padding!r}"
        )
    return padding.lower()


def normalize_tuple(value, name: str, allow_none: bool = False) -> Tuple[int, int]:
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


def axis_padding(size: int, window: int, stride: int, padding: str) -> AxisPadding:
    """Output length and (before, after) padding of one axis.

    Args:
        size: input length H.
        window: kernel or pool length K.
        stride: step between windows.
        padding: "valid" or "same".

    Returns:
        ``AxisPadding(out, before, after)``. SAME: ``out = ceil(H / stride)``,
        ``before + after = max((out - 1) * stride + K - H, 0)`` with the odd
        one after. VALID: ``out = (H - K) // stride + 1``, no padding.

    Raises:
        ValueError: if a VALID window does not fit in the input.
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        return AxisPadding(out, total // 2, total - total // 2)
    if size < window:
        raise ValueError(
            f"window of size {window} does not fit in an input of size {size} "
            "with padding='valid'"
        )
    return AxisPadding((size - window) // stride + 1, 0, 0)


def spatial_padding(
    hw: Sequence[int], window: Sequence[int], strides: Sequence[int], padding: str
) -> Tuple[AxisPadding, AxisPadding]:
    """``axis_padding`` for height and width."""
    return tuple(
        axis_padding(s, k, st, padding) for s, k, st in zip(hw, window, strides)
    )
