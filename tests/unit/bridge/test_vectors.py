"""vectors/frames.txt: every line decodes to its meaning; every good line re-encodes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_bridge.framing import BadFrame, Deframer, Frame, encode_frame

VECTORS = Path(__file__).resolve().parents[3] / "firmware_bridge" / "vectors" / "frames.txt"


def _lines() -> list[list[str]]:
    rows = [
        ln.split()
        for ln in VECTORS.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert all(len(r) == 6 for r in rows)
    return rows


ROWS = _lines()


def test_every_reason_and_message_class_is_covered() -> None:
    results = {r[1] for r in ROWS}
    assert results == {"ok", "crc", "cobs", "short", "version", "length", "oversize"}
    types = {int(r[2], 16) for r in ROWS if r[1] == "ok"}
    assert {0x01, 0x02, 0x7E, 0x7F, 0x81, 0x83, 0x40, 0x41, 0x42, 0x50} <= types


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_vector(row: list[str]) -> None:
    _name, result, type_, seq, body, wire_hex = row
    wire = bytes.fromhex(wire_hex)
    events = Deframer().feed(wire)
    assert len(events) == 1
    event = events[0]
    if result == "ok":
        expected = Frame(int(type_, 16), int(seq), b"" if body == "-" else bytes.fromhex(body))
        assert event == expected
        assert encode_frame(expected) == wire
    else:
        assert isinstance(event, BadFrame)
        assert event.reason == result
