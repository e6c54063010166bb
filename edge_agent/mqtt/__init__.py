"""MQTT: topics, on-disk outbox, paho link, commands and the agent's MqttComponent (#4).

The contract is in docs/mqtt.md (topics, payloads, commands) and docs/architecture.md.
The component itself: ``from edge_agent.mqtt.component import MqttComponent``.
"""

from __future__ import annotations

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
