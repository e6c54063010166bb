"""Firmware bridge: the serial protocol between the agent and the board's controller.

Pure protocol (no I/O): :mod:`.crc`, :mod:`.cobs`, :mod:`.framing`, :mod:`.messages`.
I/O: :mod:`.link` (pyserial port + reader thread + reconnect), :mod:`.client` (requests/events).
The wire format is specified in ``PROTOCOL.md``; the C side lives in ``firmware/``.
"""

from .client import BridgeClient, Counters
from .errors import (
    BridgeClosed,
    BridgeError,
    BridgeNack,
    BridgePortError,
    BridgeProtocolError,
    BridgeTimeout,
)
from .framing import BadFrame, Deframer, Frame, decode_chunk, encode_frame
from .messages import Event, HelloInfo, MsgType, Telemetry

__all__ = [
    "BadFrame",
    "BridgeClient",
    "BridgeClosed",
    "BridgeError",
    "BridgeNack",
    "BridgePortError",
    "BridgeProtocolError",
    "BridgeTimeout",
    "Counters",
    "Deframer",
    "Event",
    "Frame",
    "HelloInfo",
    "MsgType",
    "Telemetry",
    "decode_chunk",
    "encode_frame",
]
