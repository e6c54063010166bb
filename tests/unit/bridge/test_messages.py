"""Message bodies: every parser refuses a body of the wrong size with a clear error."""

from __future__ import annotations

import pytest

from firmware_bridge import BridgeProtocolError
from firmware_bridge import messages as m


def test_telemetry_and_power() -> None:
    body = bytes.fromhex(
        "393000003610f3fde02ee204b80bf40101012620d007000080000000008100000a00000002000000"
    )
    t = m.parse_telemetry(body)
    assert (t.uptime_s, t.board_temp_c, t.accel_temp_c) == (12.345, 41.5, -5.25)
    assert (t.rail_v, t.rail_a, t.power_w, t.fan_rpm, t.accel_util) == (12.0, 1.25, 15.0, 3000, 0.5)
    with pytest.raises(BridgeProtocolError, match="TELEMETRY body is 39 bytes, expected 40"):
        m.parse_telemetry(body[:-1])


def test_hello_info() -> None:
    body = m.pack_hello_info(
        fw=(1, 2, 3),
        bitstream=7,
        caps=0b10101,
        reset_reason=1,
        boot_count=4,
        max_body=240,
        outputs=0b11,
        inputs=0b1100,
        name="board",
    )
    h = m.parse_hello_info(body)
    assert (h.firmware, h.capabilities, h.reset_reason) == (
        "1.2.3",
        ["telemetry", "gpio", "simulator"],
        "watchdog",
    )
    assert (h.outputs, h.inputs, h.name, h.boot_count) == ([0, 1], [2, 3], "board", 4)
    with pytest.raises(BridgeProtocolError, match="name is truncated"):
        m.parse_hello_info(body[:-1])
    with pytest.raises(BridgeProtocolError, match="HELLO_INFO body is 3 bytes"):
        m.parse_hello_info(body[:3])


def test_events() -> None:
    e = m.parse_event(m.MsgType.BOOT, 1, bytes([1, 2, 0]))
    assert e.to_json() == {"event": "boot", "seq": 1, "reset_reason": "watchdog", "boot_count": 2}
    e = m.parse_event(m.MsgType.ERROR, 9, bytes([3, 5, 0, 0, 0]))
    assert e.data == {"code": "crc", "rx_bad": 5}
    with pytest.raises(BridgeProtocolError, match="GPIO event body is 2 bytes, expected 6"):
        m.parse_event(m.MsgType.GPIO_EVENT, 1, b"\x01\x02")
    with pytest.raises(BridgeProtocolError, match="unknown event type 0x5F"):
        m.parse_event(0x5F, 1, b"")


def test_nack_and_request_bodies() -> None:
    assert m.parse_nack(bytes([6, 3])) == (3, "bad_arg")
    assert m.parse_nack(b"") == (0, "malformed NACK")
    assert m.gpio_set_body(3, 5, 500) == bytes([3, 1, 0xF4, 1, 0, 0])
    assert m.trigger_config_body(None) == bytes([0xFF, 1, 0, 0])
    with pytest.raises(ValueError, match="trigger edge 'up'"):
        m.trigger_config_body(3, "up")
