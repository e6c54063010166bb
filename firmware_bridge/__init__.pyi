"""Type stub of the lazily loaded package (see ``__init__.py``): what it exports."""

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
