"""The camera reader's backoff lives in :mod:`edge_agent.backoff` (shared with MQTT)."""

from __future__ import annotations

from ..backoff import Backoff

__all__ = ["Backoff"]
