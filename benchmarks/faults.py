"""Fault scenarios end to end against real processes: one table row per scenario (issue #10).

Every scenario runs the real agent (``python -m edge_agent run``, synthetic camera, shipped
model, metrics every 0.1 s) against a real mosquitto, with a consumer subscribed to the
device's metrics stream from before the agent starts. Then it breaks something for real:

- broker outage 10 s, broker flapping (down 1 s / up 1 s, 5 times);
- SIGKILL of the agent N times while it publishes (``--kills``);
- a full disk: the state folder on a 2 MiB tmpfs, filled to ENOSPC for 5 s, then freed;
- a registry that trickles (500 B/s) during a model update, then SIGTERM;
- slow-loris clients on the control socket (24 of them, a byte every 1.5 s) while
  ``edge-agent status`` is asked 3 times;
- a camera that comes up 4 s after the agent (an HTTP MJPEG camera on a port nobody serves);
- the board behind a pty (the C simulator) restarted with its BOOT event garbled.

At the end it stops the agent (SIGTERM) and compares what the agent made (the last metrics seq
in its outbox) with what the consumer received. A row's verdict is ``0 lost`` (every seq
arrived), ``loss visible as a gap`` (every seq that did not arrive is covered by a gap record
or is a hole between seqs that did, so the consumer sees it), or ``LOST n unseen`` (a seq that
vanished with nothing to show for it: the promise broken). Records still in the outbox after
the stop are ``kept`` (sent at the next start), not lost. A ``!`` marks a scenario whose own
check failed (e.g. ``status`` did not answer); the script then exits 1.

    python3 benchmarks/faults.py [--only NAME ...] [--kills 5] [--list]

Needs root for the tmpfs (that row says so otherwise), mosquitto, socat and a C compiler.
The pure part (:class:`Tally`, :func:`tally`) is tested in ``tests/unit/test_faults_tally.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.mqtt.fleet import SeqTracker
from firmware_bridge.testing import wait_for

# --- pure: what the consumer saw against what the agent made --------------------------------


@dataclass(frozen=True)
class Tally:
    """One stream at the end of a scenario, in seqs (``made`` = the last seq the agent gave)."""

    made: int
    received: int  # distinct data records that arrived
    duplicates: int  # the same seq again (after a reconnect or a kill): harmless
    gaps: int  # holes the consumer sees between seqs that arrived, no gap record for them
    reported: int  # seqs the device reported lost in gap records
    gap_records: int
    kept: int  # still in the outbox after the stop: sent at the next start, not lost
    unseen: int  # neither arrived, nor kept, nor visible as a gap: lost without a trace

    @property
    def verdict(self) -> str:
        if self.unseen:
            return f"LOST {self.unseen} unseen"
        if self.gaps or self.reported:
            return "loss visible as a gap"
        return "0 lost"


def tally(made: int, records: Iterable[Mapping[str, Any]], kept: Iterable[int] = ()) -> Tally:
    """Count one stream the way a consumer (``fleet watch``'s :class:`SeqTracker`) sees it.

    ``records``: the JSON records received, in order (gap records are
    ``{"seq", "gap": {"from", "to", ...}}``); ``kept``: seqs still in the agent's outbox."""
    tracker = SeqTracker(max_missing=10**9)
    data: set[int] = set()
    gap_records = 0
    for rec in records:
        seq = rec.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            continue
        tracker.add(seq)
        gap = rec.get("gap")
        if isinstance(gap, Mapping):
            gap_records += 1
            first, last = gap.get("from"), gap.get("to")
            if isinstance(first, int) and isinstance(last, int) and 0 < first <= last < seq:
                tracker.add_gap(first, last, str(gap.get("reason") or "unknown"))
        else:
            data.add(seq)
    waiting = set(kept)
    if tracker.first is None or tracker.last is None:
        outside = set(range(1, made + 1))
    else:  # before the first or after the last seq seen, a consumer cannot know they existed
        outside = set(range(1, tracker.first)) | set(range(tracker.last + 1, made + 1))
    return Tally(
        made=made,
        received=len(data),
        duplicates=tracker.duplicates,
        gaps=len(tracker.missing - waiting),
        reported=tracker.lost,
        gap_records=gap_records,
        kept=len(waiting),
        unseen=len(outside - waiting),
    )


# --- the world: a broker, a consumer per device, the real agent ------------------------------


@dataclass
class Row:
    scenario: str
    tally: Tally
    state: str  # the agent afterwards, and what the scenario checked
    ok: bool = True  # the scenario's own check (status answered, stopped in time...)
    expect_loss: bool = False  # a full disk loses records: a gap is the right outcome
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        t = self.tally
        if t.unseen or not self.ok:
            return False
        return self.expect_loss or not (t.gaps or t.reported)


class Device:
    """One agent (its own device id, state folder, config) and a consumer of its streams."""

    def __init__(self, work: Path, broker_port: int, name: str, *, state: Path | None = None,
                 extra: str = "", camera: str | None = None) -> None:
        from edge_agent.mqtt.testing import Recorder
        from tests.support.mqtt_agent import write_config

        self.id = f"f-{name}-{uuid.uuid4().hex[:6]}"
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = state or self.dir / "state"
        self.prefix = f"edge/{self.id}"
        self.config = write_config(
            self.dir / "agent.toml", self.state, broker_port, device_id=self.id,
            interval_s=0.1, reconnect_initial_s=1, reconnect_max_s=2,
        )
        text = self.config.read_text()
        if camera is not None:
            text = text.replace(
                'source = "synthetic"',
                f'source = "{camera}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1.0',
            )
        self.config.write_text(text + extra)
        self.rec = Recorder(broker_port, [f"{self.prefix}/metrics", f"{self.prefix}/status",
                                          "faults/replies"], client_id=f"c-{self.id}")
        self.agent: Any = None
        self.exit_codes: list[int] = []

    @property
    def socket(self) -> Path:
        return self.state / "agent.sock"

    def start(self) -> Device:
        from tests.support.mqtt_agent import AgentProc

        self.agent = AgentProc(self.config, real=True)
        return self

    def metrics(self) -> list[dict[str, Any]]:
        return list(self.rec.on(f"{self.prefix}/metrics"))

    def last_metrics(self) -> dict[str, Any]:
        data = [m for m in self.metrics() if "gap" not in m]
        return data[-1] if data else {}

    def statuses(self) -> list[dict[str, Any]]:
        return list(self.rec.on(f"{self.prefix}/status"))

    def wait(self, pred: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            if self.agent is not None and self.agent.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not pred():
            raise ScenarioFailed(f"{what} (agent log: {self.log_tail()})")

    def wait_records(self, n: int = 3, timeout: float = 60) -> None:
        start = len(self.metrics())
        self.wait(lambda: len(self.metrics()) >= start + n, timeout, f"{n} new metrics records")

    def made(self) -> tuple[int, list[int]]:
        from tests.integration.mqtt.test_delivery import outbox_state

        try:
            return outbox_state(self.state)
        except Exception:  # the database is not there yet / locked for a moment
            return 0, []

    def max_seq(self) -> int:
        return max((m["seq"] for m in self.metrics() if isinstance(m.get("seq"), int)),
                   default=0)

    def finish(self, drain_s: float = 30) -> Tally:
        """Let the consumer catch up with what was made, SIGTERM the agent, count."""
        if self.agent is not None and self.agent.proc.poll() is None:
            made, _ = self.made()
            deadline = time.monotonic() + drain_s
            while self.max_seq() < made and time.monotonic() < deadline:
                time.sleep(0.05)
            self.exit_codes.append(self.agent.stop(timeout=15))
        made, kept = self.made()
        deadline = time.monotonic() + 3  # the records of the stop itself
        while self.max_seq() < made - len(kept) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        return tally(made, self.metrics(), kept)

    def stopped_state(self) -> str:
        try:
            st = json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            st = {}
        rc = self.exit_codes[-1] if self.exit_codes else None
        return f"exit {rc}, {st.get('state', '?')}"

    def log_tail(self, n: int = 600) -> str:
        log = self.config.with_suffix(".log")
        text = log.read_text(errors="replace") if log.exists() else ""
        return text[-n:].replace("\n", " | ")

    def close(self) -> None:
        if self.agent is not None:
            self.agent.kill()
        self.rec.close()


class ScenarioFailed(RuntimeError):
    """A scenario could not reach the state it waits for (the message says which)."""


class NotRun(RuntimeError):
    """The scenario cannot run on this machine (the message says what is missing)."""


@dataclass
class World:
    work: Path
    broker: Any
    kills: int
    stack: ExitStack

    def device(self, name: str, **kw: Any) -> Device:
        d = Device(self.work, self.broker.port, name, **kw)
        self.stack.callback(d.close)
        return d


# --- scenarios -------------------------------------------------------------------------------


def broker_outage(w: World) -> Row:
    d = w.device("outage").start()
    d.wait_records(5)
    w.broker.stop()
    time.sleep(10)
    w.broker.start()
    d.wait_records(5)
    t = d.finish()
    connects = (d.last_metrics().get("mqtt") or {}).get("connects")
    return Row("broker outage 10 s", t, f"{d.stopped_state()}; {connects} connects")


def broker_flapping(w: World) -> Row:
    d = w.device("flap").start()
    d.wait_records(5)
    for _ in range(5):
        w.broker.stop()
        time.sleep(1.0)
        w.broker.start()
        time.sleep(1.0)
    t0 = time.monotonic()
    d.wait_records(3, timeout=60)
    back = time.monotonic() - t0
    t = d.finish()
    return Row("broker flapping 5x (1 s down/1 s up)", t,
               f"{d.stopped_state()}; publishing {back:.1f} s after the last flap")


def sigkill_loop(w: World) -> Row:
    d = w.device("kill")
    rng = random.Random(10)
    for _ in range(w.kills):
        d.start().wait_records(2)
        time.sleep(rng.uniform(0.1, 0.8))  # somewhere in the middle of publishing
        d.agent.kill()
        d.exit_codes.append(d.agent.proc.returncode)
    d.start().wait_records(5)
    t = d.finish()
    killed = sum(1 for rc in d.exit_codes if rc == -signal.SIGKILL)
    return Row(f"SIGKILL x{w.kills} while publishing", t,
               f"{killed} killed; then {d.stopped_state()}")


def full_disk(w: World) -> Row:
    import pytest

    from tests.support.smalldisk import SmallDisk

    disk = SmallDisk(w.work / "disk", "2m")
    try:
        disk.__enter__()
    except pytest.skip.Exception as exc:
        raise NotRun(str(exc)) from None
    w.stack.callback(disk.__exit__, None, None, None)
    d = w.device("disk", state=disk.path / "state").start()
    d.wait_records(10)
    disk.fill()
    d.wait(lambda: any(s.get("degraded") for s in d.statuses()), 15, "status degraded")
    time.sleep(5)
    disk.free()
    d.wait(lambda: any("gap" in m for m in d.metrics()), 20, "a gap record")
    d.wait(lambda: not d.statuses()[-1].get("degraded"), 20, "status no longer degraded")
    d.wait_records(3)
    t = d.finish()
    return Row("full disk 5 s (tmpfs ENOSPC)", t,
               f"degraded while full, then ok; {d.stopped_state()}", expect_loss=True)


def trickling_update(w: World) -> Row:
    try:
        from tests.support.updates import TrickleServer, new_key, seed_store
    except ImportError as exc:
        raise NotRun(f"needs tests.support.updates.TrickleServer ({exc})") from None
    from edge_agent.updates.publish import publish
    from edge_agent.updates.store import Store
    from tests.support.helpers import MODELS

    base = w.work / "update"
    base.mkdir()
    key, pub = new_key(base)
    reg = base / "registry"
    for version, seq in (("1.0", 1), ("2.0", 2)):
        publish(MODELS / "digits_int8.tflite", name="digits", version=version, key=key, to=reg,
                seq=seq)
    state = base / "state"
    with TrickleServer(reg, rate=None) as fast:
        seed_store(state, fast.url, pub, "digits", "1.0", [1, 8, 8, 1])
    slow = TrickleServer(reg, rate=500).__enter__()
    w.stack.callback(slow.__exit__, None, None, None)
    extra = f'[updates]\ntrusted_keys = ["{pub}"]\nregistry = "{slow.url}"\n'
    d = w.device("update", state=state, extra=extra).start()
    d.wait(lambda: any(s.get("online") for s in d.statuses()), 60, "online")
    d.wait_records(3)
    body = {"id": "u1", "params": {"model": "digits", "version": "2.0", "deployment": "slow1"}}
    for _ in range(20):  # until the device shows it has the command (a byte of the model out)
        d.rec.publish(f"{d.prefix}/cmd/update", json.dumps(body).encode(), correlation=b"u1",
                      response_topic="faults/replies")
        if _served(slow) > 0 or wait_for(lambda: _served(slow) > 0, 1.5):
            break
    d.wait(lambda: _served(slow) > 1000, 30, "1000 bytes of the model downloaded")
    t0 = time.monotonic()
    d.agent.signal(signal.SIGTERM)
    rc = d.agent.proc.wait(30)
    took = time.monotonic() - t0
    d.exit_codes.append(rc)
    left = "socket left behind" if d.socket.exists() else "socket removed"
    overran = "did not stop within" in d.log_tail(10**6)
    t = d.finish()
    ok = rc == 0 and not d.socket.exists() and not overran and "stopped" in d.stopped_state()
    budget = "over the shutdown budget" if overran else "within the shutdown budget"
    dep = Store(state).load().deployment
    update = f"update {dep.state}, resumes at the next start" if dep else "no update recorded"
    return Row("trickling registry (500 B/s) in an update, SIGTERM", t,
               f"{d.stopped_state()} in {took:.2f} s ({budget}), {left}; {update}", ok)


def _served(srv: Any) -> int:
    return sum(n for p, n in dict(srv.served).items() if p.endswith(".tflite"))


def slow_control_clients(w: World) -> Row:
    from tests.support.helpers import run_cli
    from tests.support.slow_clients import SlowLoris

    d = w.device("loris").start()
    d.wait_records(3)
    d.wait(d.socket.exists, 30, "the control socket")
    answered = 0
    with SlowLoris(d.socket, n=24, every=1.5) as loris:
        time.sleep(1.5)
        for _ in range(3):
            r = run_cli("status", "--json", "--config", str(d.config), timeout=60)
            answered += r.returncode == 0
        wait_for(lambda: loris.drops >= 24, 10)
        drops = loris.drops
    t = d.finish()
    return Row("24 slow-loris clients on the control socket", t,
               f"status answered {answered}/3, {drops} slow clients dropped; "
               f"{d.stopped_state()}", answered == 3)


def late_camera(w: World) -> Row:
    import inspect

    from tests.support.ops import MjpegCamera, free_port

    if "port" not in inspect.signature(MjpegCamera).parameters:
        raise NotRun("needs tests.support.ops.MjpegCamera(port=...)")
    port = free_port()
    d = w.device("camera", camera=f"http://127.0.0.1:{port}/stream.mjpg").start()
    waiting = ("reconnecting", "failed")
    d.wait(lambda: (d.last_metrics().get("camera") or {}).get("health") in waiting, 60,
           "metrics while the camera is away")
    time.sleep(4)
    cam = MjpegCamera(fps=20, port=port)
    w.stack.callback(cam.close)
    t0 = time.monotonic()
    d.wait(lambda: (d.last_metrics().get("camera") or {}).get("health") == "ok"
           and (d.last_metrics().get("fps") or {}).get("processed", 0) > 0, 30,
           "the camera picked up")
    took = time.monotonic() - t0
    t = d.finish()
    return Row("camera up 4 s after the agent", t,
               f"camera reconnecting -> ok {took:.1f} s after it came; {d.stopped_state()}")


def board_reset(w: World) -> Row:
    from firmware_bridge.testing import SimError, SimPort

    try:
        sim = SimPort(w.work, sim_args=("--garble-boot",), restartable=True)
        sim.start()
    except SimError as exc:
        raise NotRun(str(exc)) from None
    w.stack.callback(sim.kill)
    extra = (f'[bridge]\nenabled = true\nport = "{sim.url}"\nwatchdog_timeout_ms = 3000\n'
             "telemetry_interval_s = 0.2\nstall_s = 10\n")
    d = w.device("board", extra=extra).start()

    def bridge() -> dict[str, Any]:
        return d.last_metrics().get("bridge") or {}

    d.wait(lambda: bridge().get("configured") and bridge().get("kicks", 0) > 0, 60,
           "the board set up")
    d.wait(lambda: bridge().get("uptime_s", 0) >= 1.0, 30, "a second of board uptime")
    sim.restart_board()
    d.wait(lambda: bridge().get("board_resets") == 1 and bridge().get("configured"), 20,
           "the reset seen and the board set up again")
    d.wait_records(3)
    b = bridge()
    gaps = (b.get("link") or {}).get("event_gaps")
    t = d.finish()
    return Row("board restarted behind the pty, BOOT lost", t,
               f"board_resets {b.get('board_resets')}, event_gaps {gaps}, watchdog re-armed; "
               f"{d.stopped_state()}", b.get("board_resets") == 1 and gaps == 0)


SCENARIOS: dict[str, Callable[[World], Row]] = {
    "outage": broker_outage,
    "flapping": broker_flapping,
    "sigkill": sigkill_loop,
    "disk": full_disk,
    "update": trickling_update,
    "control": slow_control_clients,
    "camera": late_camera,
    "board": board_reset,
}


# --- the table -------------------------------------------------------------------------------

COLUMNS = ("scenario", "made", "received", "dup", "kept", "gaps seen (in gap records)",
           "agent afterwards", "verdict")


def cells(row: Row) -> tuple[str, ...]:
    t = row.tally
    seen = f"{t.gaps + t.reported} ({t.reported} in {t.gap_records})"
    mark = "" if row.passed else " !"
    return (row.scenario, str(t.made), str(t.received), str(t.duplicates), str(t.kept), seen,
            row.state, t.verdict + mark)


def render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    line = " | ".join("-" * w for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)), line]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


@contextmanager
def world(kills: int) -> Iterator[World]:
    from edge_agent.mqtt.testing import Mosquitto

    work = Path(tempfile.mkdtemp(prefix="edge-faults-"))
    with ExitStack() as stack:
        broker = Mosquitto(work / "broker", persistence=True).start()
        stack.callback(lambda: broker.stop())
        try:
            yield World(work, broker, kills, stack)
        finally:
            stack.close()
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run these only")
    ap.add_argument("--kills", type=int, default=5, help="SIGKILLs in the sigkill scenario")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    names = args.only or list(SCENARIOS)
    table: list[tuple[str, ...]] = []
    failed = not_run = 0
    t_all = time.monotonic()
    for name in names:
        print(f"[faults] {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        with world(args.kills) as w:
            try:
                row = SCENARIOS[name](w)
            except NotRun as exc:
                not_run += 1
                table.append((name, *["-"] * 5, f"not run: {exc}", "- !"))
                continue
            except ScenarioFailed as exc:
                failed += 1
                table.append((name, *["-"] * 5, f"FAILED: {exc}"[:300], "- !"))
                continue
        row.seconds = time.monotonic() - t0
        failed += not row.passed
        table.append(cells(row))
        print(f"[faults] {name}: {row.tally.verdict} in {row.seconds:.1f} s", file=sys.stderr)
    print(render(table))
    verdict = "every row 0 lost or loss visible as a gap"
    if failed or not_run:
        verdict = f"{failed} failed, {not_run} not run (!)"
    print(f"\n{len(names)} scenarios in {time.monotonic() - t_all:.0f} s; {verdict}")
    return 1 if failed or not_run else 0


if __name__ == "__main__":
    sys.exit(main())
