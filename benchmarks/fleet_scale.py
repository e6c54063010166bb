"""``fleet serve`` at fleet scale, through a real mosquitto on loopback, driven by
``edge-agent fleet simulate`` (one process, one MQTT connection per device).

For each device count (default 1,000 / 5,000 / 10,000) and each setup (SQLite with one
replica, PostgreSQL with one and with two replicas), with metrics every 10 s and events at
0.05/s per device (one detection every 20 s):

- offered: records/s the devices published in the measuring window; ingested: records/s the
  replicas took in (``edge_fleet_ingest_total{kind="records"}``, summed), and the backlog:
  how much more was published than taken in over the window (published minus ingested at
  its end less the same at its start, each read right after a report of the simulator) —
  about 0 (a few batches) means it keeps up;
- CPU (% of one core) of the simulator, mosquitto and PostgreSQL (every process of its
  server) over the window too, and the load average at its start and end: they share the
  machine's cores with ``fleet serve``;
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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
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


def pg_pids(pg: PgServer | None) -> list[int]:
    """The postmaster and its children (the backends, the writer, the WAL writer...)."""
    if pg is None:
        return []
    try:
        master = int((pg.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    kids.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return [master, *kids]


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = proc_stat(pid)[0]
        except (OSError, ValueError, IndexError):
            continue
    return out


def share(before: dict[int, float], after: dict[int, float], wall: float) -> float:
    """% of one core the processes used between the two samples (new ones: all of theirs)."""
    return round(100 * sum(a - before.get(p, 0.0) for p, a in after.items()) / wall, 1)


class CpuWatch:
    """CPU (% of one core) of each replica and of the other processes between ``__init__``
    and :meth:`shares`, and the load average at both ends."""

    def __init__(self, serves: list[FleetServe], others: dict[str, list[int]],
                 pg: PgServer | None) -> None:
        self.serves, self.others, self.pg = serves, others, pg
        self.t0 = time.monotonic()
        self.serve0 = [proc_stat(s.proc.pid)[0] for s in serves]  # type: ignore[union-attr]
        self.other0 = {k: cpu_of(v) for k, v in others.items()}
        self.pg0 = cpu_of(pg_pids(pg))
        self.load0 = os.getloadavg()[0]

    def shares(self, wall: float | None = None) -> dict[str, Any]:
        wall = wall or time.monotonic() - self.t0
        now = [proc_stat(s.proc.pid) for s in self.serves]  # type: ignore[union-attr]
        others = {k: share(self.other0[k], cpu_of(v), wall) for k, v in self.others.items()}
        if self.pg0:
            others["postgres"] = share(self.pg0, cpu_of(pg_pids(self.pg)), wall)
        return {"cpu_percent": [round(100 * (c[0] - b) / wall, 1)
                                for c, b in zip(now, self.serve0, strict=True)],
                "rss_mb": [round(c[1] / 2**20, 1) for c in now],
                "cpu_percent_others": others,
                "loadavg": [round(self.load0, 2), *(round(x, 2) for x in os.getloadavg())]}


def ingested(serves: list[FleetServe], kind: str = "records") -> int:
    n = 0
    for s in serves:
        with urllib.request.urlopen(f"{s.url}/metrics", timeout=30) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith(f'edge_fleet_ingest_total{{kind="{kind}"}}'):
                n += int(float(line.split()[-1]))
    return n


def published(sim: SimProc) -> tuple[float, int]:
    r = sim.report()
    c = r.get("counters", {})
    # records = everything published but the command replies
    return float(r.get("at", 0.0)), int(c.get("published", 0)) - int(c.get("commands", 0))


def snapshot(sim: SimProc, serves: list[FleetServe]) -> tuple[float, int, int]:
    """(time, records published, records ingested) at one moment: waits for the simulator's
    next report and reads the replicas' counters right after it (so the backlog, published
    minus ingested, is not skewed by a report written seconds earlier)."""
    before = sim.path.stat().st_mtime_ns if sim.path.exists() else 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sim.path.exists() and sim.path.stat().st_mtime_ns != before:
            break
        time.sleep(0.01)
    i = ingested(serves)
    t, p = published(sim)
    return t, p, i


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


def stack(setup: str, work: Path, pg: PgServer | None) -> tuple[Mosquitto, list[FleetServe]]:
    """A started mosquitto and the (not yet started) replicas of ``setup`` (sqlite, pg, pg2)."""
    broker = Mosquitto(work / "mq", persistence=False,
                       extra="allow_anonymous true\nmax_inflight_messages 100\n").start()
    database = "fleet.sqlite"
    if setup.startswith("pg"):
        assert pg is not None, f"setup {setup} needs the PostgreSQL server"
        database = pg.new_database()
    replicas = 2 if setup == "pg2" else 1
    return broker, [FleetServe(work / f"serve{i}", broker.port, database=database,
                               fleet={"client_id": f"fleet-{i}"}) for i in range(replicas)]


def unstack(broker: Mosquitto, serves: list[FleetServe], sim: SimProc | None) -> None:
    """Stop what :func:`stack` (and the run) started: the simulator, the replicas, the broker."""
    if sim is not None:
        sim.stop()
    for s in serves:
        s.kill()
    broker.stop()


def run(n: int, setup: str, window: float, metrics_s: float, work: Path,
        pg: PgServer | None, profile: tuple[str, Path] | None = None) -> dict[str, Any]:
    broker, serves = stack(setup, work, pg)
    sim: SimProc | None = None
    try:
        for s in serves:
            s.start()
        sim = SimProc(work / "sim", broker.port, n, "--metrics-interval", str(metrics_s),
                      "--events-per-s", "0.05", "--update-step-s", "0.3", "--connect-rate",
                      "250", "--groups", "fleet")
        lead = serves[0].wait(lambda: next((s for s in serves if s.get("/healthz")["leader"]),
                                           None), 30)
        # every device connected (the simulator's report; listing n devices is too heavy)
        lead.wait(lambda: sim.report().get("connected", 0) >= n, 600, step=2.0)
        time.sleep(min(metrics_s, 10.0) + 2)  # every device past its first interval
        t0, p0, i0 = snapshot(sim, serves)
        if not setup.startswith("pg"):
            pg = None  # its server runs for the other setups: not counted here
        cpu = CpuWatch(serves, {"simulate": [sim.proc.pid],
                                "mosquitto": [broker.proc.pid]}, pg)  # type: ignore[union-attr]
        pids = [s.proc.pid for s in serves]  # type: ignore[union-attr]
        spies = [subprocess.Popen(
            [profile[0], "record", "--nonblocking", "-d", str(int(window)), "-r", "50",
             "-p", str(pid), "-f", "raw", "-o", str(profile[1] / f"{n}-{setup}-serve{i}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, pid in enumerate(pids)] if profile else []
        w0 = time.monotonic()
        targets = [f"sim-{i + 1:05d}" for i in range(20)]
        r = lead.post("/v1/rollouts", {"model": "sim-model", "version": "2",
                                       "devices": targets, "waves": "1,25%,100%",
                                       "min_executed": 1, "wave_timeout": "120s"})
        inbox_max = 0
        while time.monotonic() - w0 < window:
            inbox_max = max([inbox_max] + [s.get("/healthz")["inbox"] for s in serves])
            time.sleep(1.0)
        usage = cpu.shares()
        for spy in spies:
            spy.wait(30)
        t1, p1, i1 = snapshot(sim, serves)
        rollout = lead.wait(lambda: (x := lead.get(f"/v1/rollouts/{r['id']}"))["state"] ==
                            "finished" and x, 120, step=1.0)
        time.sleep(1.5)
        devices = sim.report()["devices"]
        offered = (p1 - p0) / max(t1 - t0, 1e-9)
        return {
            "devices": n, "setup": setup, "metrics_s": metrics_s,
            "offered_per_s": round(offered), "ingested_per_s": round((i1 - i0) / (t1 - t0)),
            "backlog": (p1 - i1) - (p0 - i0),
            "inbox_max": inbox_max,
            **usage,
            "wave_to_wave_s": wave_gaps(rollout, devices),
        }
    finally:
        unstack(broker, serves, sim)


def drain(n: int, setup: str, backlog: int, work: Path, pg: PgServer | None) -> dict[str, Any]:
    """Capacity without the simulator on the cores: the replicas' sessions exist but they are
    stopped while ``n`` devices (metrics every second) publish ``backlog`` records into them;
    then the replicas start and take in the backlog: records/s until it is drained, with the
    CPU of each replica and of PostgreSQL and mosquitto meanwhile."""
    broker, serves = stack(setup, work, pg)
    sim: SimProc | None = None
    try:
        for s in serves:  # their persistent sessions and shared subscriptions
            s.start()
        sim = SimProc(work / "sim", broker.port, n, "--metrics-interval", "1",
                      "--events-per-s", "0.05", "--connect-rate", "250")
        serves[0].wait(lambda: sim.report().get("connected", 0) >= n, 600, step=2.0)
        base = ingested(serves)
        for s in serves:
            s.stop()  # SIGTERM: a clean disconnect; the broker keeps their sessions
        serves[0].wait(lambda: published(sim)[1] >= backlog, 600, step=0.5)
        sim.stop()
        total = published(sim)[1]
        for s in serves:
            s.start()
        if not setup.startswith("pg"):
            pg = None
        cpu = CpuWatch(serves, {"mosquitto": [broker.proc.pid]}, pg)  # type: ignore[union-attr]
        w0 = time.monotonic()
        def taken() -> tuple[int, int]:
            return ingested(serves), ingested(serves, "duplicates")
        got = first = taken()
        last = w0
        while time.monotonic() - last < 5:  # until the counters stop growing for 5 s
            time.sleep(0.5)
            now = taken()
            if now != got:
                got, last = now, time.monotonic()
        wall = last - w0
        records, dups = got[0] - first[0], got[1] - first[1]
        usage = cpu.shares(wall)
        return {
            "devices": n, "setup": setup, "drain": True, "published": total,
            "records": records, "duplicates": dups, "before_stop": base,
            # seqs never received (the broker did not deliver them): gaps, counted once
            "missing": sum(x["missing"] for x in serves[0].get("/v1/lost")),
            "seconds": round(wall, 1),
            "ingested_per_s": round(records / wall),
            "messages_per_s": round((records + dups) / wall),
            **usage,
        }
    finally:
        unstack(broker, serves, sim)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", default="1000,5000,10000")
    ap.add_argument("--setups", default="sqlite,pg,pg2")
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--capacity", action="store_true", help="metrics every 1 s")
    ap.add_argument("--drain", type=int, metavar="RECORDS",
                    help="capacity instead: the replicas take in a backlog of this many "
                    "records published while they were stopped (no simulator running)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="sample each fleet serve with py-spy over the window (collapsed "
                    "stacks in DIR; py-spy must be installed; it costs some CPU)")
    a = ap.parse_args()
    spy = None
    if a.profile:
        spy = shutil.which("py-spy")
        if spy is None:
            ap.error("--profile needs py-spy (pip install py-spy)")
        a.profile.mkdir(parents=True, exist_ok=True)
    pg = PgServer().start() if any(s.startswith("pg") for s in a.setups.split(",")) else None
    rows = []
    try:
        for n in (int(x) for x in a.devices.split(",")):
            for setup in a.setups.split(","):
                work = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
                try:
                    if a.drain:
                        row = drain(n, setup, a.drain, work, pg)
                    else:
                        row = run(n, setup, a.window, 1.0 if a.capacity else 10.0, work, pg,
                                  (spy, a.profile) if spy and a.profile else None)
                except Exception as exc:  # one failed setup must not lose the others
                    row = {"devices": n, "setup": setup,
                           "error": f"{type(exc).__name__}: {exc}"[-800:]}
                    traceback.print_exc()
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
