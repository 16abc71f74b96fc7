"""Reading an untrusted gzip stream with every part of it bounded.

Python's ``gzip`` module reads a header's file-name and comment fields one
byte at a time for as long as they go (a 256 MB name takes tens of seconds),
accepts any number of members (200,000 empty ones take seconds and
hundreds of MB) and inflates without limit. This reader parses the header
itself, refuses name or comment fields longer than ``MAX_FIELD_BYTES``, more
than ``max_members`` members and more than ``max_output`` inflated bytes,
and checks each member's CRC-32 and length, with the bound in the message.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from datasets.errors import DataError

MAGIC = b"\x1f\x8b"
MAX_FIELD_BYTES = 1024  # a file name or comment; the official files' are ~30 bytes
MAX_MEMBERS = 4  # the official files have one
MAX_PADDING_BYTES = 1 << 20
_CHUNK = 1 << 16
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16


class BoundedGzipReader:
    """``read(size)`` of the inflated stream of ``raw`` (a binary file at a gzip header).

    Raises:
        DataError: naming ``source``, for a malformed or oversized header field,
            too many members, more than ``max_output`` inflated bytes, a bad
            CRC or length, or a truncated stream.
    """

    def __init__(self, raw: BinaryIO, source: str, max_output: int,
                 max_members: int = MAX_MEMBERS):
        self.raw, self.source = raw, source
        self.max_output, self.max_members = max_output, max_members
        self.members = 0
        self.produced = 0
        self._input = b""
        self._output = bytearray()
        self._inflater = None  # a zlib decompressobj while inside a member
        self._crc = 0
        self._member_size = 0
        self._eof = False

    def __enter__(self) -> "BoundedGzipReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.raw.close()

    def readable(self) -> bool:
        return True

    def _fail(self, what: str) -> DataError:
        return DataError(f"{self.source}: {what}")

    def _fill(self, at_least: int) -> bool:
        """Reads input until ``at_least`` bytes are buffered; False at the end of the file."""
        while len(self._input) < at_least:
            chunk = self.raw.read(_CHUNK)
            if not chunk:
                return False
            self._input += chunk
        return True

    def _take(self, count: int, what: str) -> bytes:
        if not self._fill(count):
            raise self._fail(f"truncated gzip {what}")
        taken, self._input = self._input[:count], self._input[count:]
        return taken

    def _field(self, name: str) -> None:
        """Skips a zero-terminated header field, refusing one past MAX_FIELD_BYTES."""
        while True:
            end = self._input.find(b"\0", 0, MAX_FIELD_BYTES + 1)
            if end >= 0:
                self._input = self._input[end + 1:]
                return
            if len(self._input) > MAX_FIELD_BYTES:
                raise self._fail(f"gzip header {name} field longer than {MAX_FIELD_BYTES} "
                                 "bytes; not a data file")
            if not self._fill(len(self._input) + 1):
                raise self._fail(f"truncated gzip header {name} field")

    def _at_end(self) -> bool:
        """True at the end of the file, after at most MAX_PADDING_BYTES of zero padding
        (which gzip allows after the last member)."""
        padding = 0
        while self._fill(1) and self._input[0] == 0:
            zeros = len(self._input) - len(self._input.lstrip(b"\0"))
            padding += zeros
            self._input = self._input[zeros:]
            if padding > MAX_PADDING_BYTES:
                raise self._fail(f"more than {MAX_PADDING_BYTES} bytes of zero padding after "
                                 "the gzip data; not a data file")
            if self._input:
                raise self._fail("data after the zero padding that ends a gzip stream")
        return not self._input

    def _start_member(self) -> bool:
        """Parses the next member's header; False at the end of the stream."""
        if self._at_end():
            return False
        if self.members >= self.max_members:
            raise self._fail(f"more than {self.max_members} gzip members; not a data file")
        header = self._take(10, "header")
        if header[:2] != MAGIC or header[2] != 8:
            raise self._fail("not a gzip stream (bad magic number or method)")
        flags = header[3]
        if flags & _FEXTRA:
            (length,) = struct.unpack("<H", self._take(2, "header"))
            self._take(length, "header extra field")
        if flags & _FNAME:
            self._field("file-name")
        if flags & _FCOMMENT:
            self._field("comment")
        if flags & _FHCRC:
            self._take(2, "header")
        self.members += 1
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._crc, self._member_size = 0, 0
        return True

    def _end_member(self) -> None:
        # At the end of a member zlib puts the input it did not use in
        # unused_data and, after a call with a max_length, the same bytes in
        # unconsumed_tail (which _input now holds): keep them once.
        self._input = self._inflater.unused_data
        self._inflater = None
        crc, size = struct.unpack("<II", self._take(8, "trailer"))
        if crc != self._crc or size != self._member_size & 0xFFFFFFFF:
            raise self._fail("gzip CRC or length check failed (corrupt data)")

    def _inflate_some(self) -> None:
        """Adds inflated bytes to the output buffer, or sets the end of the stream."""
        if self._inflater is None and not self._start_member():
            self._eof = True
            return
        limit = min(self.max_output - self.produced + 1, _CHUNK * 4)
        try:
            if self._input or self._fill(1):
                data = self._inflater.decompress(self._input, limit)
                self._input = self._inflater.unconsumed_tail
            else:  # no input left: only what zlib still holds
                data = self._inflater.decompress(b"", limit)
                if not data and not self._inflater.eof:
                    raise self._fail("truncated gzip stream")
        except zlib.error as e:
            raise self._fail(f"unreadable or corrupt gzip data ({e})") from None
        self.produced += len(data)
        if self.produced > self.max_output:
            raise self._fail(f"inflates to more than {_size(self.max_output)}, more than this "
                             "data set can hold; refusing to read on")
        self._crc = zlib.crc32(data, self._crc)
        self._member_size += len(data)
        self._output += data
        if self._inflater.eof:
            self._end_member()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` inflated bytes (all that remain for a negative size)."""
        while not self._eof and (size is None or size < 0 or len(self._output) < size):
            self._inflate_some()
        if size is None or size < 0:
            size = len(self._output)
        out = bytes(self._output[:size])
        del self._output[:size]
        return out


def _size(count: int) -> str:
    return f"{count >> 20} MB" if count >= 1 << 20 else f"{count} bytes"


def open_bounded(path: str, max_output: int, max_members: int = MAX_MEMBERS):
    """The file itself if it is not gzipped, else a ``BoundedGzipReader`` over it."""
    raw = open(path, "rb")
    if raw.read(2) != MAGIC:
        raw.seek(0)
        return raw
    raw.seek(0)
    return BoundedGzipReader(raw, path, max_output, max_members)
