"""``fleet serve`` at fleet scale, through a real mosquitto on loopback, driven by
``edge-agent fleet simulate`` (one process, one MQTT connection per device).

For each device count (default 1,000 / 5,000 / 10,000) and each setup (SQLite with one
replica, PostgreSQL with one and with two replicas), with metrics every 10 s and events at
0.05/s per device (one detection every 20 s):

- offered: records/s the devices published in the measuring window; ingested: records/s the
  replicas took in (``edge_fleet_ingest_total{kind="records"}``, summed), and the backlog
  left at the end of the window (offered - ingested, after a short drain) — 0 means it keeps up;
- CPU (% of one core) and RSS of each ``fleet serve`` process over the window (from /proc);
- a rollout to 20 of the devices in waves 1,25%,100% during the load: the time from the last
  final update record of a wave (the simulator's clock) to the next wave's push arriving.

``--capacity``: the same with metrics every second (10x the load) to see where one and two
replicas saturate on this machine (the simulator, mosquitto and PostgreSQL share its cores).

    python3 benchmarks/fleet_scale.py [--devices 1000,5000,10000] [--setups sqlite,pg,pg2]
        [--window 30] [--capacity]
"""

from __future__ import annotations

import sys
from pathlib import Path

# this folder holds benchmarks/http.py: off sys.path, or it hides the standard library's http
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

from edge_agent.mqtt.testing import Mosquitto  # noqa: E402
from tests.support.fleet_serve import FleetServe, SimProc  # noqa: E402
from tests.support.postgres import PgServer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE


def ingested(serves: list[FleetServe]) -> int:
    n = 0
    for s in serves:
        with urllib.request.urlopen(f"{s.url}/metrics", timeout=30) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith('edge_fleet_ingest_total{kind="records"}'):
                n += int(float(line.split()[-1]))
    return n


def published(sim: SimProc) -> tuple[float, int]:
    r = sim.report()
    c = r.get("counters", {})
    # records = everything published but the command replies
    return float(r.get("at", 0.0)), int(c.get("published", 0)) - int(c.get("commands", 0))


def wave_gaps(rollout: dict[str, Any], devices: dict[str, Any]) -> list[float]:
    waves: dict[int, list[str]] = {}
    for t in rollout["targets"]:
        if t["wave"] is not None:
            waves.setdefault(int(t["wave"]), []).append(t["device"])
    out = []
    for k in sorted(waves)[:-1]:
        last = max(devices[d]["final_at"] or 0.0 for d in waves[k])
        nxt = min(devices[d]["pushes"][0] for d in waves[k + 1] if devices[d]["pushes"])
        out.append(round(nxt - last, 3))
    return out


def run(n: int, setup: str, window: float, metrics_s: float, work: Path,
        pg: PgServer | None) -> dict[str, Any]:
    broker = Mosquitto(work / "mq", persistence=False,
                       extra="allow_anonymous true\nmax_inflight_messages 100\n").start()
    database = pg.new_database() if setup.startswith("pg") else "fleet.sqlite"
    replicas = 2 if setup == "pg2" else 1
    serves = [FleetServe(work / f"serve{i}", broker.port, database=database,
                         fleet={"client_id": f"fleet-{i}"}) for i in range(replicas)]
    sim: SimProc | None = None
    try:
        for s in serves:
            s.start()
        sim = SimProc(work / "sim", broker.port, n, "--metrics-interval", str(metrics_s),
                      "--events-per-s", "0.05", "--update-step-s", "0.3", "--connect-rate",
                      "250", "--groups", "fleet")
        lead = next(s for s in serves if s.get("/healthz")["leader"])
        # every device connected (the simulator's report; listing n devices is too heavy)
        lead.wait(lambda: sim.report().get("connected", 0) >= n, 600, step=2.0)
        time.sleep(min(metrics_s, 10.0) + 2)  # every device past its first interval
        t0, p0 = published(sim)
        i0 = ingested(serves)
        cpu0 = [proc_stat(s.proc.pid)[0] for s in serves]  # type: ignore[union-attr]
        w0 = time.monotonic()
        targets = [f"sim-{i + 1:05d}" for i in range(20)]
        r = lead.post("/v1/rollouts", {"model": "sim-model", "version": "2",
                                       "devices": targets, "waves": "1,25%,100%",
                                       "min_executed": 1, "wave_timeout": "120s"})
        inbox_max = 0
        while time.monotonic() - w0 < window:
            inbox_max = max([inbox_max] + [s.get("/healthz")["inbox"] for s in serves])
            time.sleep(1.0)
        wall = time.monotonic() - w0
        cpu1 = [proc_stat(s.proc.pid) for s in serves]  # type: ignore[union-attr]
        t1, p1 = published(sim)
        time.sleep(3)  # let what was published in the window arrive
        i1 = ingested(serves)
        rollout = lead.wait(lambda: (x := lead.get(f"/v1/rollouts/{r['id']}"))["state"] ==
                            "finished" and x, 120, step=1.0)
        time.sleep(1.5)
        devices = sim.report()["devices"]
        offered = (p1 - p0) / max(t1 - t0, 1e-9)
        return {
            "devices": n, "setup": setup, "metrics_s": metrics_s,
            "offered_per_s": round(offered), "ingested_per_s": round((i1 - i0) / (wall + 3)),
            "backlog": max(0, (p1 - p0) - (i1 - i0)), "inbox_max": inbox_max,
            "cpu_percent": [round(100 * (c[0] - b) / wall, 1) for c, b in zip(cpu1, cpu0,
                                                                                 strict=True)],
            "rss_mb": [round(c[1] / 2**20, 1) for c in cpu1],
            "wave_to_wave_s": wave_gaps(rollout, devices),
        }
    finally:
        if sim is not None:
            sim.stop()
        for s in serves:
            s.kill()
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", default="1000,5000,10000")
    ap.add_argument("--setups", default="sqlite,pg,pg2")
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--capacity", action="store_true", help="metrics every 1 s")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args()
    pg = PgServer().start() if any(s.startswith("pg") for s in a.setups.split(",")) else None
    rows = []
    try:
        for n in (int(x) for x in a.devices.split(",")):
            for setup in a.setups.split(","):
                work = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
                try:
                    row = run(n, setup, a.window, 1.0 if a.capacity else 10.0, work, pg)
                except Exception as exc:  # one failed setup must not lose the others
                    row = {"devices": n, "setup": setup, "error": str(exc)[-800:]}
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if pg is not None:
            pg.stop()
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
