"""Exceptions of the MQTT part, one per failure kind."""

from __future__ import annotations

from ..errors import EdgeAgentError, ExitCode


class MqttError(EdgeAgentError):
    """Base of the MQTT errors."""

    exit_code = ExitCode.MQTT


class BrokerError(MqttError):
    """The broker cannot be reached, refused us, or the TLS handshake failed."""

    exit_code = ExitCode.BROKER


class CredentialsError(MqttError):
    """The password file or TLS files named in ``[mqtt]`` cannot be read."""

    exit_code = ExitCode.CREDENTIALS


class OutboxError(MqttError):
    """The on-disk outbox cannot be opened or written (disk full, bad permissions...)."""

    exit_code = ExitCode.OUTBOX


class OutboxCorrupt(OutboxError):
    """The outbox file is not a readable SQLite database (moved aside, a new one started)."""


class CommandError(MqttError):
    """A command is refused or failed; becomes an error reply ``{"code", "message"}``.

    Command handlers raise it (``CommandError("busy", "an update is already running")``);
    the dispatcher raises it for malformed, oversized, unknown or expired commands.
    """

    exit_code = ExitCode.COMMAND

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CommandTimeout(MqttError):
    """No reply to a command within the time limit (central side)."""

    exit_code = ExitCode.COMMAND_TIMEOUT
