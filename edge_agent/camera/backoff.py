"""The camera reader's backoff lives in :mod:`edge_agent.common.backoff` (shared with MQTT)."""

from __future__ import annotations

from ..common.backoff import Backoff

__all__ = ["Backoff"]
