"""A real agent (``python -m edge_agent run``, real mosquitto) whose registry trickles, stalls
or whose disk fills: SIGTERM stops it within the shutdown budget and the download resumes
after the restart; the ``cancel`` and ``rollback`` commands end an update in progress; the
overall deadline frees the update channel; ENOSPC on a real tmpfs ends ``failed/disk_full``
with the old model still running."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.mqtt.testing import Mosquitto
from edge_agent.updates.publish import publish
from edge_agent.updates.store import Store
from tests.integration.test_update_agent import Agent, World
from tests.integration.test_update_deadlines import tmpfs  # noqa: F401  (fixture)
from tests.support.helpers import MODELS, wait_until
from tests.support.updates import TrickleServer, fill_disk, new_key, nginx, seed_store

DIGITS = MODELS / "digits_int8.tflite"
MODEL_PATH = "digits/2.0/digits_int8.tflite"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("upd-stall")
    key, pub = new_key(base)
    reg = base / "registry"
    reg.mkdir()
    for version, seq in (("1.0", 1), ("2.0", 2), ("3.0", 3)):
        publish(DIGITS, name="digits", version=version, key=key, to=reg, seq=seq)
    broker = Mosquitto(base / "broker").start()
    try:
        with nginx(reg, base / "nginx") as server:
            one = base / "template-digits"
            seed_store(one, server.http_url, pub, "digits", "1.0", [1, 8, 8, 1])
            two = base / "template-digits-two"
            shutil.copytree(one, two)
            seed_store(two, server.http_url, pub, "digits", "2.0", [1, 8, 8, 1])
            yield World(base, key, pub, reg, server, broker,
                        {"digits": one, "digits-two": two})
    finally:
        broker.stop()


@pytest.fixture()
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for a in made:
        a.close()


def replies(a: Agent, name: str, cid: str) -> list[dict[str, Any]]:
    return [x for x in a.rec.on(f"{a.prefix}/cmd/{name}/reply") if x.get("id") == cid]


def test_sigterm_during_a_trickle_stops_within_budget_then_resumes_and_cancel_ends_it(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    with TrickleServer(world.registry, rate=500) as srv:
        a = Agent(world, tmp_path, "digits")
        agents.append(a)
        a.start().wait_online()
        a.command("update", {"model": "digits", "version": "2.0", "registry": srv.url,
                             "deployment": "trickle1"})
        assert wait_until(lambda: srv.served.get(MODEL_PATH, 0) > 1000), a.tail()

        assert a.proc is not None
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        rc = a.proc.wait(30)
        took = time.monotonic() - t0
        print(f"SIGTERM during a 500 B/s download: exited in {took:.2f} s")
        log = a.tail()
        assert rc == 0, log
        assert "did not stop within" not in log and "left behind" not in log, log
        status = json.loads((a.state / "status.json").read_text())
        assert status["state"] == "stopped", status
        assert not (a.state / "agent.sock").exists()
        d = Store(a.state).load().deployment
        assert d is not None and (d.id, d.state, d.final) == ("trickle1", "downloading", False)
        part = a.state / "models/staging/trickle1/.digits_int8.tflite.part"
        kept = part.stat().st_size
        assert kept > 0

        # the restart resumes the download where the kept bytes end
        n_req = len(srv.ranges)
        a.start().wait_online()
        assert wait_until(lambda: any(p == MODEL_PATH and r for p, r in srv.ranges[n_req:])), (
            srv.ranges, a.tail())
        rng = next(r for p, r in srv.ranges[n_req:] if p == MODEL_PATH and r)
        assert rng is not None and int(rng.split("=")[1].rstrip("-")) >= kept

        cid = a.command("cancel", {})
        assert wait_until(lambda: bool(replies(a, "cancel", cid)))
        reply = replies(a, "cancel", cid)[-1]
        assert reply.get("ok"), reply
        body = reply["result"]
        assert (body["cancelled"], body["state"], body["outcome"]) == (
            "trickle1", "downloading", "cancelled"), body
        final = a.wait_final("trickle1")
        assert (final["state"], final["reason"]) == ("cancelled", "cancelled")
        assert not (a.state / "models/staging/trickle1").exists()

        # the channel is free: the next update (a fast registry) goes through
        a.command("update", {"model": "digits", "version": "2.0", "deployment": "fast1"})
        assert a.wait_final("fast1")["state"] == "committed", a.tail()

        cid = a.command("cancel", {})  # nothing runs now: says so, changes nothing
        assert wait_until(lambda: bool(replies(a, "cancel", cid)))
        assert replies(a, "cancel", cid)[-1]["result"] == {
            "cancelled": None, "detail": "no update in progress"}


def test_rollback_cancels_a_trickling_update_and_goes_back(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    with TrickleServer(world.registry, rate=0) as srv:  # headers, then nothing, forever
        a = Agent(world, tmp_path, "digits-two")
        agents.append(a)
        a.start().wait_online()
        a.command("update", {"model": "digits", "version": "3.0", "registry": srv.url,
                             "deployment": "stuck3"})
        assert wait_until(lambda: any(x["state"] == "downloading" for x in a.updates("stuck3")))
        cid = a.command("rollback", {})
        assert wait_until(lambda: bool(replies(a, "rollback", cid)))
        reply = replies(a, "rollback", cid)[-1]
        assert reply.get("ok"), reply
        body = reply["result"]
        assert body["cancelled"] == "stuck3", body
        assert body["active"] == "digits 1.0", body
        final = a.wait_final("stuck3")
        assert final["state"] == "cancelled" and "rollback" in final["detail"], final
        def back(r: Any) -> bool:
            st = r.on(f"{a.prefix}/status")
            return bool(st) and st[-1].get("models", {}).get("running", {}).get("version") == "1.0"
        assert a.rec.wait(back, 10), a.rec.on(f"{a.prefix}/status")[-1:]
        assert a.running_model_verifies()["version"] == "1.0"


def test_download_deadline_ends_the_update_and_frees_the_channel(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    with TrickleServer(world.registry, rate=200) as srv:
        a = Agent(world, tmp_path, "digits", download_timeout_s=1.0, min_rate_bytes_s=10**6)
        agents.append(a)
        a.start().wait_online()
        a.command("update", {"model": "digits", "version": "2.0", "registry": srv.url,
                             "deployment": "slow1"})
        final = a.wait_final("slow1")
        assert (final["state"], final["reason"]) == ("failed", "download_timeout"), final
        assert "deadline" in final["detail"]
        assert not (a.state / "models/staging/slow1").exists()
        a.command("update", {"model": "digits", "version": "2.0", "deployment": "fast2"})
        assert a.wait_final("fast2")["state"] == "committed", a.tail()


def test_enospc_during_an_update_fails_disk_full_and_the_old_model_keeps_running(
    world: World, tmp_path: Path, agents: list[Agent], tmpfs: Callable[[Path], Path]  # noqa: F811
) -> None:
    a = Agent(world, tmp_path, "digits")
    agents.append(a)
    models = tmpfs(a.state / "models")  # a real 2 MiB tmpfs holding the model store
    filler = models / "filler"

    with TrickleServer(world.registry, rate=20_000) as srv:
        a.start().wait_online()
        a.command("update", {"model": "digits", "version": "2.0", "registry": srv.url,
                             "deployment": "full1"})
        assert wait_until(lambda: srv.served.get(MODEL_PATH, 0) > 5000), a.tail()
        filler_thread = threading.Thread(target=fill_disk, args=(filler,))
        filler_thread.start()
        final = a.wait_final("full1")
        filler_thread.join()
    assert (final["state"], final["reason"]) == ("failed", "disk_full"), (final, a.tail())
    assert "disk is full" in final["detail"]
    assert not (models / "staging/full1").exists()  # its staging freed
    seen = len(a.rec.on(f"{a.prefix}/metrics"))
    assert a.rec.wait(lambda r: len(r.on(f"{a.prefix}/metrics")) > seen + 2, 10)  # still runs
    assert a.metrics()["model"]["version"] == "1.0"
    filler.unlink()
    assert a.running_model_verifies()["version"] == "1.0"
    assert a.proc is not None and a.proc.poll() is None
