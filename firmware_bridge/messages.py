"""Message types and body layouts of PROTOCOL.md, as pure pack/unpack functions."""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

from .errors import BridgeProtocolError


class MsgType(IntEnum):
    HELLO = 0x01
    PING = 0x02
    TELEMETRY_GET = 0x03
    WDT_CONFIG = 0x04
    WDT_KICK = 0x05
    GPIO_SET = 0x06
    GPIO_GET = 0x07
    TRIGGER_CONFIG = 0x08
    RESET = 0x09
    RESET_REASON_GET = 0x0A
    SIM_INPUT = 0x30
    SIM_LOAD = 0x31
    GPIO_EVENT = 0x40
    TRIGGER = 0x41
    BOOT = 0x42
    ERROR = 0x50
    ACK = 0x7E
    NACK = 0x7F
    HELLO_INFO = 0x81
    PONG = 0x82
    TELEMETRY = 0x83
    GPIO_STATE = 0x87
    RESET_REASON = 0x8A


def type_name(t: int) -> str:
    try:
        return MsgType(t).name
    except ValueError:
        return f"0x{t:02X}"


def is_event(t: int) -> bool:
    return 0x40 <= t <= 0x5F


def is_response(t: int) -> bool:
    return t in (MsgType.ACK, MsgType.NACK) or 0x80 <= t <= 0xBF


RESET_REASONS = {0: "power-on", 1: "watchdog", 2: "software", 3: "brown-out", 255: "unknown"}
NACK_CODES = {1: "unknown_type", 2: "bad_length", 3: "bad_arg", 4: "state", 5: "unsupported"}
ERROR_CODES = {1: "cobs", 2: "short", 3: "crc", 4: "version", 5: "length", 6: "oversize"}
CAPABILITIES = {0: "telemetry", 1: "watchdog", 2: "gpio", 3: "trigger", 4: "simulator"}
EDGES = {"rising": 1, "falling": 2, "both": 3}


def _unpack(fmt: struct.Struct, body: bytes, what: str) -> tuple[Any, ...]:
    if len(body) != fmt.size:
        raise BridgeProtocolError(
            f"{what} body is {len(body)} bytes, expected {fmt.size}: firmware and host "
            "disagree on the protocol (check versions with `edge-agent bridge info`)"
        )
    return fmt.unpack(body)


def _mask_pins(mask: int) -> list[int]:
    return [i for i in range(32) if mask >> i & 1]


# --- responses ---------------------------------------------------------------------------

_HELLO = struct.Struct("<BBBBIIBHHIIB")


@dataclass(frozen=True)
class HelloInfo:
    proto: int
    firmware: str
    bitstream: int
    capabilities: list[str]
    reset_reason: str
    boot_count: int
    max_body: int
    outputs: list[int]
    inputs: list[int]
    name: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pack_hello_info(
    *,
    fw: tuple[int, int, int],
    bitstream: int,
    caps: int,
    reset_reason: int,
    boot_count: int,
    max_body: int,
    outputs: int,
    inputs: int,
    name: str,
) -> bytes:
    raw = name.encode()[:32]
    return (
        _HELLO.pack(
            1, *fw, bitstream, caps, reset_reason, boot_count, max_body, outputs, inputs, len(raw)
        )
        + raw
    )


def parse_hello_info(body: bytes) -> HelloInfo:
    if len(body) < _HELLO.size:
        raise BridgeProtocolError(f"HELLO_INFO body is {len(body)} bytes, need {_HELLO.size}")
    (proto, ma, mi, pa, bits, caps, reason, boots, max_body, outs, ins, nlen) = _HELLO.unpack_from(
        body
    )
    name = body[_HELLO.size : _HELLO.size + nlen]
    if len(name) != nlen:
        raise BridgeProtocolError("HELLO_INFO board name is truncated")
    return HelloInfo(
        proto=proto,
        firmware=f"{ma}.{mi}.{pa}",
        bitstream=bits,
        capabilities=[n for bit, n in CAPABILITIES.items() if caps >> bit & 1],
        reset_reason=RESET_REASONS.get(reason, f"code {reason}"),
        boot_count=boots,
        max_body=max_body,
        outputs=_mask_pins(outs),
        inputs=_mask_pins(ins),
        name=name.decode("utf-8", "replace"),
    )


_TELEMETRY = struct.Struct("<IhhHHHHIIIIII")


@dataclass(frozen=True)
class Telemetry:
    uptime_s: float
    board_temp_c: float
    accel_temp_c: float
    rail_v: float
    rail_a: float
    power_w: float
    fan_rpm: int
    accel_util: float
    bitstream: int
    watchdog_timeout_ms: int
    gpio_out: int
    gpio_in: int
    rx_ok: int
    rx_bad: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_telemetry(body: bytes) -> Telemetry:
    up, bt, at, mv, ma, rpm, util, bits, wdt, gout, gin, rok, rbad = _unpack(
        _TELEMETRY, body, "TELEMETRY"
    )
    return Telemetry(
        uptime_s=up / 1000,
        board_temp_c=bt / 100,
        accel_temp_c=at / 100,
        rail_v=mv / 1000,
        rail_a=ma / 1000,
        power_w=round(mv * ma / 1e6, 3),
        fan_rpm=rpm,
        accel_util=util / 1000,
        bitstream=bits,
        watchdog_timeout_ms=wdt,
        gpio_out=gout,
        gpio_in=gin,
        rx_ok=rok,
        rx_bad=rbad,
    )


_GPIO_STATE = struct.Struct("<BBB")


def parse_gpio_state(body: bytes) -> tuple[int, int, bool]:
    pin, value, is_out = _unpack(_GPIO_STATE, body, "GPIO_STATE")
    return pin, value, bool(is_out)


_RESET_REASON = struct.Struct("<BH")


def parse_reset_reason(body: bytes) -> tuple[str, int]:
    reason, boots = _unpack(_RESET_REASON, body, "RESET_REASON")
    return RESET_REASONS.get(reason, f"code {reason}"), boots


def parse_nack(body: bytes) -> tuple[int, str]:
    if len(body) < 2:
        return 0, "malformed NACK"
    return body[1], NACK_CODES.get(body[1], f"code {body[1]}")


# --- requests ----------------------------------------------------------------------------


def wdt_config_body(timeout_ms: int) -> bytes:
    return struct.pack("<I", timeout_ms)


def gpio_set_body(pin: int, value: int, hold_ms: int = 0) -> bytes:
    return struct.pack("<BBI", pin, 1 if value else 0, hold_ms)


def gpio_get_body(pin: int) -> bytes:
    return struct.pack("<B", pin)


def trigger_config_body(pin: int | None, edge: str = "rising", debounce_ms: int = 0) -> bytes:
    if edge not in EDGES:
        raise ValueError(f"trigger edge {edge!r} is not one of {sorted(EDGES)}")
    return struct.pack("<BBH", 0xFF if pin is None else pin, EDGES[edge], debounce_ms)


def sim_input_body(pin: int, value: int) -> bytes:
    return struct.pack("<BB", pin, 1 if value else 0)


def sim_load_body(fps: float) -> bytes:
    return struct.pack("<H", max(0, min(65535, round(fps * 100))))


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An unsolicited message from the board, or one the client infers: ``link`` (the port
    went down or came back), ``reset`` (the event seq went backwards: the board reset and its
    BOOT was lost; data ``from_seq``, ``to_seq``)."""

    kind: str  # gpio | trigger | boot | error | link | reset
    seq: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "seq": self.seq, **self.data}


_EVENTS: dict[int, tuple[str, struct.Struct, tuple[str, ...]]] = {
    MsgType.GPIO_EVENT: ("gpio", struct.Struct("<BBI"), ("pin", "value", "time_ms")),
    MsgType.TRIGGER: ("trigger", struct.Struct("<BII"), ("pin", "count", "time_ms")),
    MsgType.BOOT: ("boot", struct.Struct("<BH"), ("reset_reason", "boot_count")),
    MsgType.ERROR: ("error", struct.Struct("<BI"), ("code", "rx_bad")),
}


def parse_event(type_: int, seq: int, body: bytes) -> Event:
    try:
        kind, fmt, names = _EVENTS[type_]
    except KeyError:
        raise BridgeProtocolError(f"unknown event type 0x{type_:02X}") from None
    data = dict(zip(names, _unpack(fmt, body, kind.upper() + " event"), strict=True))
    if kind == "boot":
        data["reset_reason"] = RESET_REASONS.get(data["reset_reason"], "unknown")
    elif kind == "error":
        data["code"] = ERROR_CODES.get(data["code"], f"code {data['code']}")
    return Event(kind, seq, data)
