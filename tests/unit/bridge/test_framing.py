"""Pure protocol: CRC, COBS, frames, the stream deframer under noise (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs
from firmware_bridge.crc import CHECK_VALUE, crc16
from firmware_bridge.framing import (
    MAX_BODY,
    MAX_ENCODED,
    BadFrame,
    Deframer,
    Frame,
    FrameError,
    decode_chunk,
    encode_frame,
)

frames = st.builds(
    Frame,
    type=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    body=st.binary(max_size=MAX_BODY),
)


class TestCrc:
    def test_check_value(self) -> None:
        assert crc16(b"123456789") == CHECK_VALUE == 0x29B1

    def test_running_value(self) -> None:
        assert crc16(b"6789", crc16(b"12345")) == CHECK_VALUE


class TestCobs:
    @pytest.mark.parametrize(
        ("raw", "enc"),
        [
            ("", "01"),
            ("00", "0101"),
            ("0000", "010101"),
            ("11220033", "0311220233"),
            ("11000000", "0211010101"),
            (bytes(range(1, 255)).hex(), "ff" + bytes(range(1, 255)).hex()),
            (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02ff"),
        ],
    )
    def test_known_vectors(self, raw: str, enc: str) -> None:
        assert cobs.encode(bytes.fromhex(raw)).hex() == enc
        assert cobs.decode(bytes.fromhex(enc)).hex() == raw

    @given(st.binary(max_size=1000))
    def test_round_trip_has_no_zero(self, data: bytes) -> None:
        enc = cobs.encode(data)
        assert 0 not in enc
        assert len(enc) <= len(data) + 1 + len(data) // 254
        assert cobs.decode(enc) == data

    @pytest.mark.parametrize("bad", ["0541", "030041", "00"])
    def test_rejects(self, bad: str) -> None:
        with pytest.raises(cobs.CobsError):
            cobs.decode(bytes.fromhex(bad))


class TestFrames:
    @given(frames)
    def test_round_trip(self, frame: Frame) -> None:
        wire = encode_frame(frame)
        assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
        assert len(wire) - 2 <= MAX_ENCODED
        assert decode_chunk(wire[1:-1]) == frame

    def test_limits(self) -> None:
        with pytest.raises(FrameError, match="exceeds 240"):
            encode_frame(Frame(2, 1, bytes(MAX_BODY + 1)))
        with pytest.raises(FrameError, match="seq"):
            encode_frame(Frame(2, 0x10000))


def _deliver(stream: bytes, split: int) -> tuple[list[Frame], list[BadFrame], Deframer]:
    d = Deframer()
    got: list[Frame | BadFrame] = []
    for i in range(0, len(stream), split):
        got += d.feed(stream[i : i + split])
    good = [f for f in got if isinstance(f, Frame)]
    bad = [f for f in got if isinstance(f, BadFrame)]
    return good, bad, d


class TestDeframerNoise:
    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.tuples(frames, st.binary(max_size=40)), min_size=1, max_size=12),
        st.integers(1, 64),
    )
    def test_noise_between_frames(self, items: list[tuple[Frame, bytes]], split: int) -> None:
        """Random bytes between frames: every good frame arrives, in order."""
        # the trailing 0x00 is the next frame's leading delimiter: it ends the last noise run
        stream = b"".join(encode_frame(f) + noise for f, noise in items) + b"\x00"
        good, bad, d = _deliver(stream, split)
        assert good == [f for f, _ in items]
        noisy_chunks = sum(1 for _, n in items if n.strip(b"\x00"))
        # a noise run with zeros inside may split into several bad chunks; never fewer
        assert len(bad) >= noisy_chunks
        c = d.counters
        assert c.frames_ok == len(good)
        assert c.crc_errors + c.framing_errors + c.resyncs == len(bad)

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.tuples(frames, st.booleans(), st.integers(0, 10_000)), min_size=1, max_size=12),
        st.integers(1, 64),
    )
    def test_single_bit_flips_inside_frames(
        self, items: list[tuple[Frame, bool, int]], split: int
    ) -> None:
        """One flipped bit inside a frame: that frame is counted bad, all others arrive."""
        stream = bytearray()
        expected = []
        flipped = 0
        for frame, flip, where in items:
            wire = bytearray(encode_frame(frame))
            if flip:
                bit = where % ((len(wire) - 2) * 8)  # inside: not the delimiters
                wire[1 + bit // 8] ^= 1 << (bit % 8)
                flipped += 1
            else:
                expected.append(frame)
            stream += wire
        good, bad, _ = _deliver(bytes(stream), split)
        assert good == expected
        assert len(bad) >= flipped

    def test_oversize_is_bounded_and_resyncs(self) -> None:
        d = Deframer()
        f = Frame(2, 9, b"hi")
        out = d.feed(encode_frame(f) + b"\x55" * 100_000)
        assert d.buffered <= MAX_ENCODED
        out += d.feed(b"\x55" * 10 + encode_frame(f))
        assert [type(x).__name__ for x in out] == ["Frame", "BadFrame", "Frame"]
        assert d.counters.resyncs == 1

    def test_empty_chunks_are_silent(self) -> None:
        d = Deframer()
        assert d.feed(b"\x00" * 50) == []
        assert d.counters.framing_errors == 0
