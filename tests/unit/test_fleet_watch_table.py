"""``fleet watch`` (issue 12): the table fits an 80-column terminal and an offline device shows
the model it ran last (carried by the agent's offline status records)."""

from __future__ import annotations

import json
import time

from rich.console import Console

from edge_agent.cli.fleet_cmds import render_table
from edge_agent.mqtt.fleet import FleetState


def _msg(**kw: object) -> bytes:
    return json.dumps({"ts": time.time(), **kw}).encode()


def _state() -> FleetState:
    f = FleetState()
    now = time.time()
    for i in range(6):
        dev = f"camera-entrance-north-{i:02d}"
        f.ingest(f"edge/{dev}/status", _msg(seq=1, online=True, model={"name": "person_detect",
                 "version": "2.14.0-rc1"}, backend="litert"), now)
        f.ingest(f"edge/{dev}/metrics", _msg(seq=1, fps={"processed": 29.97},
                 latency_ms={"e2e": {"p95": 123.4}}, cpu={"process_percent": 187.5},
                 temperature={"cpu_c": 71.3}), now)
    # the agent's will: offline, with the model it ran
    f.ingest("edge/camera-entrance-north-03/status",
             _msg(seq=2, online=False, reason="connection lost",
                  model={"name": "person_detect", "version": "2.14.0-rc1"}), now)
    f.ingest("edge/lab-7/status", _msg(seq=1, online=False, reason="stopped"), now)
    return f


def _lines(width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(render_table(_state(), width))
    return console.export_text().splitlines()


def test_fits_80_columns_with_offline_models() -> None:
    lines = _lines(80)
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    offline = [ln for ln in lines if " offline " in ln]
    assert len(offline) == 2 and "person_detect" in offline[0], "\n".join(lines)
    assert "lab-7" in offline[1] and "…" not in "".join(lines[:2])
    header = next(ln for ln in lines if ln.lstrip().startswith("device"))
    for col in ("state", "model", "fps", "p95", "cpu", "temp", "seen", "gaps"):
        assert col in header


def test_wide_terminal_adds_backend_and_reason() -> None:
    lines = _lines(140)
    text = "\n".join(lines)
    assert "backend" in text and "connection lost" in text and "litert" in text
