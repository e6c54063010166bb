"""Trigger captures stay bounded: the real Agent (shipped model, synthetic camera) with the C
simulator behind a pty whose trigger input is driven at ~20 edges/s, and on a full tmpfs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edge_agent.bridge.component import BridgeComponent
from edge_agent.config import parse_config
from firmware_bridge import BridgeClient
from firmware_bridge.testing import SimPort, wait_for
from tests.support.smalldisk import SmallDisk

PIN = 10


@contextmanager
def running_agent(
    sim: SimPort, state_dir: Path, captures: dict[str, Any]
) -> Iterator[tuple[Any, BridgeComponent, BridgeClient]]:
    from edge_agent.agent.lifecycle import Agent

    cfg = parse_config({
        "device": {"id": "capture-test", "state_dir": str(state_dir)},
        "metrics": {"interval_s": 0.3},
        "bridge": {"enabled": True, "port": sim.url, "telemetry_interval_s": 0.5,
                   "trigger_pin": PIN, "trigger_debounce_ms": 0},
        "captures": captures,
    })
    client = BridgeClient(sim.url, timeout_s=0.5)
    comp = BridgeComponent(cfg, client=client)
    agent = Agent(cfg, components=[comp])
    agent.build()
    done: list[Any] = []
    runner = threading.Thread(target=lambda: done.append(agent.run(duration=60)))
    runner.start()
    try:
        assert wait_for(lambda: comp.status()["connected"] and comp._configured, timeout=20)
        assert wait_for(lambda: agent.pipeline.snapshots.items(), timeout=20)
        yield agent, comp, client
    finally:
        agent.request_stop("test done")
        runner.join(15)
    assert not runner.is_alive() and done


def pulse(client: BridgeClient, n: int, per_s: float) -> float:
    """``n`` rising edges on the trigger input at about ``per_s``; returns the seconds taken."""
    t0 = time.monotonic()
    for i in range(n):
        client.sim_input(PIN, 1)
        client.sim_input(PIN, 0)
        time.sleep(max(0.0, t0 + (i + 1) / per_s - time.monotonic()))
    return time.monotonic() - t0


def on_disk(root: Path) -> tuple[int, int]:
    folders = [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    return len(folders), sum(f.stat().st_size for p in folders for f in p.rglob("*.jpg"))


def test_a_trigger_flood_is_rate_limited_and_the_folder_bounded(
    sim: SimPort, tmp_path: Path
) -> None:
    limits = {"max_count": 4, "max_bytes": 10 * 1024 * 1024, "per_minute": 60, "burst": 3}
    with running_agent(sim, tmp_path / "state", limits) as (_agent, comp, client):
        took = pulse(client, 80, per_s=20)
        assert wait_for(lambda: comp.stats["triggers"] >= 80, timeout=10)
        assert wait_for(lambda: comp._queue.empty(), timeout=10)
        stats = dict(comp.stats)
    count, size = on_disk(tmp_path / "state" / "captures")
    print(f"80 trigger edges in {took:.1f} s: {stats['captures']} captures, "
          f"{stats['captures_rate_limited']} refused, {stats['captures_pruned']} deleted; "
          f"on disk {count} folders, {size} bytes")
    assert stats["triggers"] == 80
    assert stats["captures"] + stats["captures_rate_limited"] == 80
    # burst 3 + 1 per second: far fewer than 80
    assert 3 <= stats["captures"] <= 3 + int(took) + 2
    assert count == 4 and stats["captures_pruned"] == stats["captures"] - 4
    assert stats["capture_errors"] == 0


def test_captures_on_a_full_disk_are_counted_and_the_agent_goes_on(
    sim: SimPort, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"per_minute": 6000, "burst": 100}
    with SmallDisk(tmp_path / "disk", "4m") as disk, \
            running_agent(sim, disk.path / "state", limits) as (agent, comp, client):
        pulse(client, 1, per_s=10)
        assert wait_for(lambda: comp.stats["captures"] == 1, timeout=10)
        disk.fill()
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="edge_agent.bridge"):
            processed = agent.pipeline.counters()["processed"]
            pulse(client, 5, per_s=10)
            assert wait_for(lambda: comp.stats["capture_errors"] == 5, timeout=10)
            assert wait_for(lambda: agent.pipeline.counters()["processed"] > processed + 5)
        not_saved = [r for r in caplog.records if "capture not saved" in r.getMessage()]
        assert len(not_saved) == 1, [r.getMessage() for r in caplog.records]
        assert "No space left on device" in not_saved[0].getMessage()
        disk.free()
        pulse(client, 1, per_s=10)
        assert wait_for(lambda: comp.stats["captures"] == 2, timeout=10)
        assert on_disk(disk.path / "state" / "captures")[0] == 2
