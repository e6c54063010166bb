"""``edge-agent bridge ...`` against the C simulator behind a real pty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.testing import SimPort
from tests.support.helpers import run_cli


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimPort]:
    with SimPort(tmp_path_factory.mktemp("bridge-cli")) as port:
        yield port


def test_ping_json(sim: SimPort) -> None:
    proc = run_cli("bridge", "ping", "--port", sim.url, "-n", "10", "--size", "32", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["count"] == 10 and out["size"] == 32
    assert 0 < out["rtt_ms"]["min"] <= out["rtt_ms"]["p50"] <= out["rtt_ms"]["max"]


def test_info_and_telemetry(sim: SimPort) -> None:
    proc = run_cli("bridge", "info", "--port", sim.url)
    assert proc.returncode == 0, proc.stderr
    assert "edge-sim" in proc.stdout and "firmware 1.0.0" in proc.stdout
    assert "last reset: power-on" in proc.stdout
    proc = run_cli("bridge", "telemetry", "--port", sim.url, "--json")
    t = json.loads(proc.stdout)
    assert t["power_w"] == pytest.approx(t["rail_v"] * t["rail_a"], abs=1e-3)
    assert {"board_temp_c", "accel_temp_c", "fan_rpm", "accel_util"} <= t.keys()


def test_gpio_set_get_and_refusal(sim: SimPort) -> None:
    proc = run_cli("bridge", "gpio", "set", "5", "1", "--port", sim.url, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"pin": 5, "value": 1, "hold_ms": 0}
    proc = run_cli("bridge", "gpio", "get", "5", "--port", sim.url)
    assert proc.stdout.strip() == "pin 5 (output) = 1"
    proc = run_cli("bridge", "gpio", "set", "12", "1", "--port", sim.url)
    assert proc.returncode == 43
    assert proc.stderr.strip() == "error: bridge: board refused GPIO_SET: bad_arg"


def test_watch_prints_events_and_telemetry(sim: SimPort) -> None:
    proc = run_cli(
        "bridge", "watch", "--port", sim.url, "--duration", "2", "--interval", "0.2", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    # 2 s at 0.2 s: ~10 polls; >= 2 leaves room for a loaded machine (was 0.6 s: flaky)
    assert len([x for x in lines if x["event"] == "telemetry"]) >= 2


def test_port_from_config_and_missing_port(tmp_path: Path, sim: SimPort) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[bridge]\nport = "{sim.url}"\n')
    proc = run_cli("bridge", "info", "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "edge-sim"
    missing = tmp_path / "ttyMISSING"
    proc = run_cli("bridge", "ping", "--port", str(missing))
    assert proc.returncode == 41
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: bridge: cannot open serial port {missing}"
    )


def test_board_not_answering_is_a_timeout(tmp_path: Path) -> None:
    """A port that opens but has no firmware behind it: a clear timeout, not a hang."""
    proc = run_cli("bridge", "info", "--port", "loop://")
    assert proc.returncode == 42
    assert "no answer to HELLO" in proc.stderr and "after 3 attempts" in proc.stderr
