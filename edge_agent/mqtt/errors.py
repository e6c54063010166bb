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


class RecordNotStored(OutboxError):
    """A record could not be written to the outbox (disk full, I/O error, outbox not open).

    It still consumed its ``seq`` (``None`` while the outbox is not open: the seq is given when
    it opens); the loss is published as a gap record once the outbox can write again.
    """

    def __init__(self, message: str, stream: str, seq: int | None, reason: str) -> None:
        super().__init__(message)
        self.stream = stream
        self.seq = seq
        self.reason = reason


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
