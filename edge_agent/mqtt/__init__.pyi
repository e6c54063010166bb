"""Type stub of the lazily loaded package (see ``__init__.py``): what it exports."""

from .commands import CommandRequest, NoParams
from .errors import (
    BrokerError,
    CommandError,
    CommandTimeout,
    CredentialsError,
    MqttError,
    OutboxError,
)
from .link import check_broker
from .topics import STREAMS, Topics

__all__ = [
    "STREAMS",
    "BrokerError",
    "CommandError",
    "CommandRequest",
    "CommandTimeout",
    "CredentialsError",
    "MqttError",
    "NoParams",
    "OutboxError",
    "Topics",
    "check_broker",
]
