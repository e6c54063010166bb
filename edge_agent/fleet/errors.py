"""The fleet service's exception types, one per failure kind (exit codes in edge_agent.errors)."""

from __future__ import annotations

from ..errors import EdgeAgentError, ExitCode


class FleetError(EdgeAgentError):
    """The fleet service failed (no finer kind)."""

    exit_code = ExitCode.FLEET


class FleetStoreError(FleetError):
    """The fleet database cannot be opened, migrated or written (names the file)."""

    exit_code = ExitCode.FLEET_STORE


class RolloutError(FleetError):
    """A rollout request is refused: unknown id, bad waves/thresholds, or not allowed in its
    current state (names the rollout, its state and the request)."""

    exit_code = ExitCode.ROLLOUT


class FleetServerError(FleetError):
    """``fleet serve``'s HTTP API cannot be reached or refused the token."""

    exit_code = ExitCode.FLEET_SERVER


class NotLeader(FleetError):
    """A rollout request reached a replica of ``fleet serve`` that does not lead the rollouts
    (HTTP 503: send it to the leader)."""
