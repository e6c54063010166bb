"""A small bounds-checked FlatBuffers reader (pure: struct only).

Enough of the wire format to read the few fields edge-agent needs from a ``.tflite`` file (its
``metadata`` list and buffers) and from the TFLite Model Metadata flatbuffer stored in one of
those buffers. Written by hand instead of vendoring the generated Python of both schemas
(~700 KB of code for the ~30 fields used) and so that a damaged or hostile file gives one
:class:`FlatbufferError` naming what is wrong, never a stray ``IndexError`` or garbage read past
the end. Every offset is checked against the buffer before it is followed.

Wire format (flatbuffers.dev "internals"): little-endian; a table starts with an int32 offset
back to its vtable (``table - soffset``); the vtable is uint16 ``[vtable size, table size,
field offsets...]``; a field at slot ``i`` is at ``table + vtable[2 + i]`` (0 = absent). Offsets
to sub-tables, strings and vectors are uint32, relative to where they are stored. A vector or
string is a uint32 length followed by its elements.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

MAX_VECTOR = 1 << 24  # elements: far above anything a model's metadata holds


class FlatbufferError(ValueError):
    """The bytes are not a well-formed flatbuffer where the reader looked."""


class Table:
    """One flatbuffer table at ``pos`` in ``buf``."""

    __slots__ = ("_vt", "_vt_len", "buf", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        soffset = _unpack(buf, "<i", pos)
        vt = pos - soffset
        vt_len = _unpack(buf, "<H", vt)
        if vt_len < 4 or vt_len % 2:
            raise FlatbufferError(f"bad vtable size {vt_len} at byte {vt}")
        _check(buf, vt, vt_len)
        self._vt = vt
        self._vt_len = vt_len

    @classmethod
    def root(cls, buf: bytes | memoryview, identifier: bytes | None = None) -> Table:
        """The root table of a whole flatbuffer (optionally checking its 4-byte identifier)."""
        if identifier is not None and bytes(buf[4:8]) != identifier:
            raise FlatbufferError(f"file identifier is {bytes(buf[4:8])!r}, not {identifier!r}")
        return cls(buf, _unpack(buf, "<I", 0))

    def _field(self, slot: int) -> int:
        """Absolute position of field ``slot``, or 0 when it is absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self._vt_len:
            return 0
        off = _unpack(self.buf, "<H", self._vt + entry)
        return self.pos + off if off else 0

    def _deref(self, at: int) -> int:
        return at + _unpack(self.buf, "<I", at)

    def has(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, fmt: str, default: int | float = 0) -> int | float:
        at = self._field(slot)
        if not at:
            return default
        value: int | float = _unpack(self.buf, "<" + fmt, at)
        return value

    def string(self, slot: int) -> str | None:
        at = self._field(slot)
        return _string(self.buf, self._deref(at)) if at else None

    def table(self, slot: int) -> Table | None:
        at = self._field(slot)
        return Table(self.buf, self._deref(at)) if at else None

    def union(self, type_slot: int) -> tuple[int, Table | None]:
        """A union is two slots: its type (ubyte) then the table."""
        kind = int(self.scalar(type_slot, "B"))
        return kind, (self.table(type_slot + 1) if kind else None)

    def _vector(self, slot: int, elem: int) -> tuple[int, int]:
        at = self._field(slot)
        if not at:
            return 0, 0
        start = self._deref(at)
        n = _unpack(self.buf, "<I", start)
        if n > MAX_VECTOR:
            raise FlatbufferError(f"vector of {n} elements at byte {start}")
        _check(self.buf, start + 4, n * elem)
        return start + 4, n

    def tables(self, slot: int) -> Iterator[Table]:
        start, n = self._vector(slot, 4)
        for i in range(n):
            at = start + 4 * i
            yield Table(self.buf, self._deref(at))

    def strings(self, slot: int) -> list[str]:
        start, n = self._vector(slot, 4)
        return [_string(self.buf, self._deref(start + 4 * i)) for i in range(n)]

    def scalars(self, slot: int, fmt: str) -> list[int | float]:
        size = struct.calcsize("<" + fmt)
        start, n = self._vector(slot, size)
        if not n:
            return []
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start))

    def bytes_view(self, slot: int) -> memoryview:
        start, n = self._vector(slot, 1)
        return memoryview(self.buf)[start : start + n]


def _check(buf: bytes | memoryview, pos: int, size: int) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise FlatbufferError(f"offset {pos}+{size} is outside the {len(buf)}-byte buffer")


def _unpack(buf: bytes | memoryview, fmt: str, pos: int) -> int:
    _check(buf, pos, struct.calcsize(fmt))
    value: int = struct.unpack_from(fmt, buf, pos)[0]
    return value


def _string(buf: bytes | memoryview, pos: int) -> str:
    n = _unpack(buf, "<I", pos)
    _check(buf, pos + 4, n)
    try:
        return bytes(buf[pos + 4 : pos + 4 + n]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlatbufferError(f"string at byte {pos} is not UTF-8: {exc}") from None
