"""Frames on the wire: ``00 | COBS(header | body | crc16) | 00``. Bytes in, events out; no I/O.

:class:`Deframer` is the receive side (h11 style): ``feed(bytes)`` returns the frames and bad
chunks that the bytes completed. Its buffer is bounded by ``MAX_ENCODED``; a longer chunk is
discarded up to the next delimiter and counted as a resync.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import cobs
from .crc import crc16

VERSION = 1
HEADER = struct.Struct("<BBHH")  # version, type, seq, length
HEADER_SIZE = HEADER.size
CRC_SIZE = 2
MAX_BODY = 240
MAX_PAYLOAD = HEADER_SIZE + MAX_BODY + CRC_SIZE  # 248
MAX_ENCODED = MAX_PAYLOAD + 1  # COBS worst case for <= 254 bytes
MAX_WIRE = MAX_ENCODED + 2

BAD_REASONS = ("oversize", "cobs", "short", "crc", "version", "length")


class FrameError(ValueError):
    """A frame cannot be built (body too long, field out of range)."""


@dataclass(frozen=True)
class Frame:
    """A decoded, CRC-checked frame."""

    type: int
    seq: int
    body: bytes = b""
    version: int = VERSION


@dataclass(frozen=True)
class BadFrame:
    """A chunk between delimiters that is not a valid frame; ``reason`` is in BAD_REASONS."""

    reason: str
    raw: bytes = field(repr=False)


def payload(frame: Frame) -> bytes:
    """Header + body + CRC, before COBS."""
    if not 0 <= frame.type <= 0xFF:
        raise FrameError(f"frame type {frame.type} is not a byte")
    if not 0 <= frame.seq <= 0xFFFF:
        raise FrameError(f"frame seq {frame.seq} does not fit 16 bits")
    if len(frame.body) > MAX_BODY:
        raise FrameError(f"frame body of {len(frame.body)} bytes exceeds {MAX_BODY}")
    data = HEADER.pack(frame.version, frame.type, frame.seq, len(frame.body)) + frame.body
    return data + crc16(data).to_bytes(2, "little")


def encode_frame(frame: Frame) -> bytes:
    """The bytes to write: leading delimiter, COBS(payload), trailing delimiter."""
    return b"\x00" + cobs.encode(payload(frame)) + b"\x00"


def decode_chunk(chunk: bytes) -> Frame | BadFrame:
    """Check one chunk (the bytes between two delimiters) in the documented order."""
    if len(chunk) > MAX_ENCODED:
        return BadFrame("oversize", chunk)
    try:
        data = cobs.decode(chunk)
    except cobs.CobsError:
        return BadFrame("cobs", chunk)
    if len(data) < HEADER_SIZE + CRC_SIZE:
        return BadFrame("short", chunk)
    if crc16(data[:-CRC_SIZE]) != int.from_bytes(data[-CRC_SIZE:], "little"):
        return BadFrame("crc", chunk)
    version, type_, seq, length = HEADER.unpack_from(data)
    if version != VERSION:
        return BadFrame("version", chunk)
    if length != len(data) - HEADER_SIZE - CRC_SIZE:
        return BadFrame("length", chunk)
    return Frame(type_, seq, bytes(data[HEADER_SIZE:-CRC_SIZE]), version)


@dataclass
class DeframerCounters:
    frames_ok: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    resyncs: int = 0
    bytes_in: int = 0


class Deframer:
    """Reassembles frames from a byte stream; bounded, resynchronises at every 0x00."""

    def __init__(self, max_encoded: int = MAX_ENCODED) -> None:
        self._buf = bytearray()
        self._max = max_encoded
        self._discarding = False
        self.counters = DeframerCounters()

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        """Add received bytes; return every frame / bad chunk they completed, in order."""
        self.counters.bytes_in += len(data)
        out: list[Frame | BadFrame] = []
        parts = data.split(b"\x00")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if self._discarding:
                if not last:
                    self._discarding = False  # found the delimiter: back in sync
                continue
            if len(self._buf) + len(part) > self._max:
                self._buf.clear()
                self.counters.resyncs += 1
                out.append(BadFrame("oversize", b""))
                self._discarding = last
                continue
            self._buf += part
            if last:
                break
            if self._buf:
                out.append(self._finish(bytes(self._buf)))
                self._buf.clear()
        return out

    def _finish(self, chunk: bytes) -> Frame | BadFrame:
        event = decode_chunk(chunk)
        c = self.counters
        if isinstance(event, Frame):
            c.frames_ok += 1
        elif event.reason == "crc":
            c.crc_errors += 1
        else:
            c.framing_errors += 1
        return event

    @property
    def buffered(self) -> int:
        return len(self._buf)
