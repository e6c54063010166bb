"""Errors of the firmware bridge, one per failure kind, each with a CLI exit code (40-45).

The numbers are rows of the one exit-code table, ``edge_agent.errors.ExitCode`` (this package
imports nothing of the agent, so they are written out here; a test checks they agree).
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    exit_code: int = 40


class BridgePortError(BridgeError):
    """The serial port cannot be opened or used (missing device, permissions, bad URL)."""

    exit_code = 41


class BridgeTimeout(BridgeError):
    """No valid answer to a request after every attempt (or the port went away)."""

    exit_code = 42


class BridgeNack(BridgeError):
    """The board refused a request (NACK with a code)."""

    exit_code = 43

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class BridgeProtocolError(BridgeError):
    """The board answered with something this host cannot use (wrong type, bad body)."""

    exit_code = 44


class BridgeClosed(BridgeError):
    """The client was closed while a request was waiting."""

    exit_code = 45
