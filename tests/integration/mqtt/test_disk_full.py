"""A full disk under the real agent (a real tmpfs filled to ENOSPC, a real mosquitto): every
seq the agent gives is either delivered or covered by a gap record the consumer receives;
command replies still go out; an agent that starts on a full disk runs degraded and recovers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.helpers import run_cli
from tests.support.mqtt_agent import AgentProc, write_config
from tests.support.smalldisk import SmallDisk

from .test_delivery import outbox_state

METRICS = "edge/dev1/metrics"


def seen(rec: Recorder) -> tuple[set[int], set[int], list[dict[str, object]]]:
    """(seqs of data records, seqs covered by gap records, the gap records) on metrics."""
    data: set[int] = set()
    covered: set[int] = set()
    gaps = []
    for m in rec.on(METRICS):
        if "gap" in m:
            gaps.append(m["gap"])
            covered.update(range(m["gap"]["from"], m["gap"]["to"] + 1))
        else:
            data.add(m["seq"])
    return data, covered, gaps


def check_every_seq(rec: Recorder, last: int) -> tuple[int, int, int, int]:
    """Every seq 1..last arrived or is covered by a gap record;
    (seqs made, data records received, seqs in gap records, gap records)."""
    data, covered, gaps = seen(rec)
    gap_seqs = {m["seq"] for m in rec.on(METRICS) if "gap" in m}
    by_seq: dict[int, set[str]] = {}
    for m in rec.on(METRICS):
        by_seq.setdefault(m["seq"], set()).add(json.dumps(m, sort_keys=True))
    reused = sorted(seq for seq, bodies in by_seq.items() if len(bodies) > 1)
    assert not reused, f"seqs given to two different records: {reused[:20]}"
    unexplained = sorted(set(range(1, last + 1)) - data - covered - gap_seqs)
    assert not unexplained, f"seqs neither delivered nor in a gap record: {unexplained[:20]}"
    assert not data & covered, "a gap record covers a record that was delivered"
    print(f"seqs made {last}, data records received {len(data)}, in {len(gaps)} gap records "
          f"{len(covered)}: {gaps}")
    return last, len(data), len(covered), len(gap_seqs)


def ping(rec: Recorder, rid: str, timeout: float = 10) -> dict[str, object]:
    rec.publish("edge/dev1/cmd/ping", json.dumps({"id": rid}).encode(), correlation=rid.encode(),
                response_topic="ops/replies")
    assert rec.wait(lambda r: any(m.correlation == rid.encode() for m in r.messages), timeout)
    return json.loads(next(m.payload for m in rec.messages if m.correlation == rid.encode()))


@contextmanager
def small_state_disk(
    tmp_path: Path, broker: Mosquitto, interval_s: float
) -> Iterator[tuple[SmallDisk, Path, Recorder]]:
    """A 2 MiB tmpfs holding the agent's state_dir, its config, and a consumer."""
    with SmallDisk(tmp_path / "disk", "2m") as disk:
        cfg = write_config(tmp_path / "a.toml", disk.path / "state", broker.port,
                           interval_s=interval_s)
        rec = Recorder(broker.port, [METRICS, "ops/replies", "edge/dev1/status"],
                       client_id="central")
        try:
            yield disk, cfg, rec
        finally:
            rec.close()


def test_enospc_window_every_lost_seq_is_in_a_gap_record(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with small_state_disk(tmp_path, mosquitto, 0.1) as (disk, cfg, rec):
        state = disk.path / "state"
        agent = AgentProc(cfg, real=True)
        try:
            assert rec.wait(lambda r: len(r.on(METRICS)) >= 10, timeout=30), agent.log.read_text()
            disk.fill()
            assert rec.wait(lambda r: any(
                s.get("degraded") for s in r.on("edge/dev1/status")), timeout=10)
            reply = ping(rec, "while-full")  # a reply that cannot be saved is still sent
            assert reply["ok"] is True, reply
            time.sleep(6)
            assert agent.proc.poll() is None
            disk.free()
            assert rec.wait(lambda r: bool(seen(r)[2]), timeout=10), "no gap record"
            assert rec.wait(lambda r: not r.on("edge/dev1/status")[-1].get("degraded"))
            assert agent.stop() == 0
        finally:
            agent.kill()
        last, _ = outbox_state(state)
        made, received, lost, n_gaps = check_every_seq(rec, last)
        assert received >= 10 and made == received + lost + n_gaps
        assert lost >= 20  # 6 s at 10 records/s: most of them could not be stored
        log = agent.log.read_text()
        assert log.count("records are not stored until the outbox can write again") == 1, log
        assert "Traceback" not in log, log


def test_full_disk_at_start_runs_degraded_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with small_state_disk(tmp_path, mosquitto, 0.2) as (disk, cfg, rec):
        state = disk.path / "state"
        agent = AgentProc(cfg, real=True)  # a first run makes the outbox
        try:
            assert rec.wait(lambda r: len(r.on(METRICS)) >= 3, timeout=30), agent.log.read_text()
            assert agent.stop() == 0
            disk.fill()
            agent = AgentProc(cfg, real=True)
            assert rec.wait(lambda r: any(
                s.get("online") and s.get("degraded") for s in r.on("edge/dev1/status")),
                timeout=30), agent.log.read_text()
            time.sleep(2)
            status = run_cli("status", "--json", "--config", str(cfg))
            assert status.returncode == 0, status.stderr
            body = json.loads(status.stdout)
            assert "cannot open the MQTT outbox" in body["broker"]["degraded"], body["broker"]
            assert body["metrics"]["mqtt"]["outbox"]["open"] is False
            assert body["metrics"]["mqtt"]["outbox"]["unstored"] >= 5
            assert ping(rec, "degraded")["ok"] is True
            before = len(rec.on(METRICS))
            disk.free()
            assert rec.wait(lambda r: bool(seen(r)[2]), timeout=20), "no gap record after freeing"
            assert rec.wait(lambda r: len(r.on(METRICS)) > before + 5, timeout=20)
            assert agent.stop() == 0
        finally:
            agent.kill()
        last, _ = outbox_state(state)
        check_every_seq(rec, last)
        log = agent.log.read_text()
        assert log.count("running degraded") == 1, log
        assert "Traceback" not in log, log


def test_restart_while_the_disk_is_full_never_reuses_a_seq(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with small_state_disk(tmp_path, mosquitto, 0.1) as (disk, cfg, rec):
        state = disk.path / "state"
        agent = AgentProc(cfg, real=True)
        try:
            assert rec.wait(lambda r: len(r.on(METRICS)) >= 10, timeout=30), agent.log.read_text()
            disk.fill()
            time.sleep(3)
            assert agent.stop() == 0  # SIGTERM on a full disk: a clean stop
            agent = AgentProc(cfg, real=True)  # and a start on it
            assert rec.wait(lambda r: sum(
                1 for s in r.on("edge/dev1/status") if s.get("online") and s.get("degraded")) >= 2,
                timeout=30), agent.log.read_text()
            assert ping(rec, "after-restart")["ok"] is True
            time.sleep(3)
            disk.free()
            assert rec.wait(lambda r: bool(seen(r)[2]), timeout=20), "no gap record"
            n = len(rec.on(METRICS))
            assert rec.wait(lambda r: len(r.on(METRICS)) > n + 5, timeout=20)
            assert agent.stop() == 0
        finally:
            agent.kill()
        last, _ = outbox_state(state)
        _made, _received, lost, _n_gaps = check_every_seq(rec, last)
        assert lost >= 20  # two outage windows of ~3 s at 10 records/s
        log = agent.log.read_text()
        assert "Traceback" not in log, log
