"""The one exception every data loader raises, and bounded text for untrusted values."""

from typing import Any

# Long enough to recognise a value, short enough that a hostile file cannot
# make an error message megabytes long.
DESCRIBE_LIMIT = 40


class DataError(Exception):
    """Data is missing, unreadable or corrupt; the message says which file and what to do."""


def describe(value: Any, limit: int = DESCRIBE_LIMIT) -> str:
    """A short description of an untrusted value for an error message.

    Never calls ``repr`` on containers or arrays (a crafted one can be huge,
    cyclic, or hold pointers) and never prints an integer of more than 64 bits
    in full (Python refuses to format very long ones).
    """
    if isinstance(value, (str, bytes)):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"
