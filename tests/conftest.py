"""Suite-wide test settings and the fixtures shared across tests/ (helpers: tests/support/).

Markers (added here by folder, so ``pytest -m unit`` is the fast pure run, in seconds):
``unit`` for tests/unit (in-process: no broker, no simulator, no CLI process) and
``integration`` for tests/integration (real mosquitto, nginx, pty + C simulator, processes).
A test parametrised with the ``postgres`` mark (a real PostgreSQL server, :func:`pg_server`)
counts as integration wherever it lives.

Hypothesis: no per-example deadline (CI machines are shared and noisy; speed is measured in
benchmarks/, never asserted in tests). On CI (CI=true) examples are derived from the test
itself, so a red run can be reproduced exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from edge_agent.mqtt.testing import Mosquitto
    from firmware_bridge import BridgeClient
    from firmware_bridge.testing import SimPort

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

TESTS = Path(__file__).resolve().parent

# The agents the suite starts serve no HTTP API (on by default, on one fixed port: parallel
# agents would contend for it, and each would pay for FastAPI's import). The HTTP tests turn it
# on with a free port (tests/support/http_agent.py drops this variable for their agent).
HTTP_OFF = "EDGE_AGENT_HTTP__ENABLED"
os.environ.setdefault(HTTP_OFF, "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if kind == "unit" and item.get_closest_marker("postgres"):
            kind = "integration"
        if kind in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, kind))


# -- real processes, always stopped ------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One real PostgreSQL server for the session (tests/support/postgres.py);
    ``pg_server.new_database()`` gives each test its own empty database."""
    from tests.support.postgres import PgServer

    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``make(name, extra=..., persistence=...)`` -> a started mosquitto on a free port; all
    stopped at the end."""
    from edge_agent.mqtt.testing import Mosquitto

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


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimPort]:
    """The C firmware simulator behind a socat pty (``sim.url`` for pyserial)."""
    from firmware_bridge.testing import SimPort

    with SimPort(tmp_path) as port:
        yield port


@pytest.fixture
def client(sim: SimPort) -> Iterator[BridgeClient]:
    """A BridgeClient connected to :func:`sim`."""
    from firmware_bridge import BridgeClient

    with BridgeClient(sim.url, timeout_s=0.5, retries=2).open() as c:
        yield c


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A command run in-process (CliRunner, cli.main) points the root logger at a stream the
    test then closes; later tests would log into it ("I/O operation on closed file")."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
