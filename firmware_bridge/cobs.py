"""Consistent Overhead Byte Stuffing: removes every 0x00 from a payload (1 byte per 254)."""

from __future__ import annotations


class CobsError(ValueError):
    """The encoded bytes are not valid COBS (a code byte points past the end, or a 0x00)."""


def encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 and is at most len+1+len//254 long."""
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        zero = data.find(0, start, min(n, start + 254))
        if zero >= 0:
            out.append(zero - start + 1)
            out += data[start:zero]
            start = zero + 1
            continue
        end = min(n, start + 254)
        out.append(end - start + 1)
        out += data[start:end]
        start = end
        if end == n:
            # a full 254-byte block at the very end still needs its terminating code
            # only when more data follows; the final block is implicit otherwise
            return bytes(out)


def decode(data: bytes) -> bytes:
    """Decode one COBS block (without delimiters); raises :class:`CobsError`."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"0x00 inside a COBS block at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"COBS code {code} at offset {i} runs past the end ({n} bytes)")
        block = data[i + 1 : end]
        if 0 in block:
            raise CobsError(f"0x00 inside a COBS block near offset {i}")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
