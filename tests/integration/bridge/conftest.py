from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge import BridgeClient
from firmware_bridge.testing import SimPort


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimPort]:
    with SimPort(tmp_path) as port:
        yield port


@pytest.fixture
def client(sim: SimPort) -> Iterator[BridgeClient]:
    with BridgeClient(sim.url, timeout_s=0.5, retries=2).open() as c:
        yield c
