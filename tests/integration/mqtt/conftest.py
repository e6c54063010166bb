"""Fixtures for integration tests: real brokers on free ports, always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.mqtt.testing import Mosquitto


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``make(extra=..., persistence=...)`` -> a started mosquitto; all stopped at the end."""
    brokers: list[Mosquitto] = []

    def make(name: str = "broker", **kw: Any) -> Mosquitto:
        b = Mosquitto(tmp_path / name, **kw)
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory()
