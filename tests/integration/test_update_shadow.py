"""Shadow evaluation through the real agent (``edge-agent run`` on the shipped demo clip, real
mosquitto, an nginx registry) and beside a real in-process pipeline.

The device runs the float face detector. The same model re-quantised (int8) agrees with it on
the live frames and is committed, its agreement figure in the records; a copy whose score head
is zeroed runs as fast and finite, passes preflight, finds nothing, and is rejected
``shadow_disagreement`` before any swap."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.agent.pipeline import Pipeline
from edge_agent.camera import CameraReader, LatestFrameSlot
from edge_agent.camera.sources import SyntheticSource
from edge_agent.inference import Runner
from edge_agent.mqtt.testing import Mosquitto
from edge_agent.updates import rollout as R
from edge_agent.updates.manifest import Shadow
from edge_agent.updates.publish import publish
from edge_agent.updates.shadow import ShadowRun
from edge_agent.updates.store import Store
from tests.integration.test_update_agent import Agent, World
from tests.support.crafted_models import zeroed_score_head
from tests.support.helpers import MODELS
from tests.support.updates import new_key, nginx, seed_store

FACE_F = MODELS / "blazeface_float32.tflite"
FACE_Q = MODELS / "blazeface_int8.tflite"
SHADOW = {"sample_rate": 1.0, "min_frames": 20, "min_agreement": 0.8, "cpu_budget": 0.5,
          "max_seconds": 60.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("upd-shadow")
    key, pub = new_key(base)
    reg = base / "registry"
    crafted = base / "crafted"
    crafted.mkdir()
    blind = zeroed_score_head(FACE_F, crafted / "blazeface_float32.tflite")
    shutil.copy(FACE_F.with_suffix(".json"), crafted / "blazeface_float32.json")
    publish(FACE_F, name="face", version="1.0", key=key, to=reg, seq=1)
    publish(FACE_Q, name="face", version="2.0-int8", key=key, to=reg, seq=2, shadow=SHADOW)
    publish(blind, name="face", version="3.0-blind", key=key, to=reg, seq=3, shadow=SHADOW)
    broker = Mosquitto(base / "broker").start()
    try:
        with nginx(reg, base / "nginx") as server:
            t = base / "template-face"
            seed_store(t, server.http_url, pub, "face", "1.0", [1, 128, 128, 3])
            yield World(base, key, pub, reg, server, broker, {"face": t})
    finally:
        broker.stop()


def demo_agent(world: World, tmp: Path) -> Agent:
    a = Agent(world, tmp, "face")
    text = a.config.read_text().replace('source = "synthetic"', 'source = "demo"')
    a.config.write_text(text.replace("width = 320\nheight = 240\nfps = 30\n", ""))
    return a


def test_agreeing_candidate_is_committed_and_a_blind_one_rejected(
    world: World, tmp_path: Path
) -> None:
    a = demo_agent(world, tmp_path).start()
    try:
        a.wait_online()
        time.sleep(1.0)  # the active model's invoke times (the latency ratio's reference)
        a.command("update", {"model": "face", "version": "2.0-int8", "deployment": "dep-q"})
        final = a.wait_final("dep-q", timeout=120)
        assert final["state"] == R.COMMITTED, (final, a.tail())
        states = [x["state"] for x in a.updates("dep-q")]
        assert states.index(R.PREFLIGHT) < states.index(R.SHADOW) < states.index(R.ACTIVATING)
        sh = final["shadow"]
        assert sh["frames"] >= 20 and sh["agreement"] >= 0.8, sh
        assert sh["latency_ratio"] is not None and sh["sampled"] >= sh["frames"]
        passed = next(x for x in a.updates("dep-q") if x["state"] == R.ACTIVATING)
        assert "shadow agreement" in passed["detail"]
        assert a.running_model_verifies()["version"] == "2.0-int8"
        before = a.metrics()["frames"]

        a.command("update", {"model": "face", "version": "3.0-blind", "deployment": "dep-b"})
        assert a.rec.wait(lambda r: "shadow" in a.metrics().get("update", {}), 60), a.tail()
        final = a.wait_final("dep-b", timeout=120)
        assert final["state"] == R.REJECTED and final["reason"] == "shadow_disagreement", final
        assert final["shadow"]["agreement"] == 0.0 and final["shadow"]["frames"] >= 20
        assert R.ACTIVATING not in [x["state"] for x in a.updates("dep-b")]
        # the active model was never touched: still the int8 one, no swap, no error
        assert a.running_model_verifies()["version"] == "2.0-int8"
        time.sleep(1.0)
        after = a.metrics()["frames"]
        assert after["swaps"] == before["swaps"] and after["errors"] == 0, (before, after)
        assert after["processed"] > before["processed"]
        s = Store(a.state).load()
        assert s.active is not None and s.active.version == "2.0-int8" and s.trial is None
        assert not list((a.state / "models").rglob("*3.0-blind*")), "rejected files kept"
    finally:
        a.close()


def test_shadow_skips_frames_instead_of_queueing_them(tmp_path: Path) -> None:
    """A real pipeline (policy ``all``: it never drops) with a shadow several times slower
    than the active model (MobileNet beside the face detector): every frame the camera gave is
    processed in order, the shadow takes what it can and counts the sampled frames it skipped."""
    shadow = Runner.open(MODELS / "mobilenet_v2_int8.tflite")
    run = ShadowRun(shadow, Shadow(sample_rate=1.0, min_frames=10_000, cpu_budget=1.0)).start()
    seqs: list[int] = []
    source = SyntheticSource(256, 192, fps=None)
    reader = CameraReader(source, LatestFrameSlot("all", on_demand=True))
    p = Pipeline(lambda: Runner.open(FACE_F), reader, limit=200,
                 sinks=[lambda fr: seqs.append(fr.seq), run.on_result])
    p.start()
    try:
        assert p.done.wait(120)
    finally:
        p.stop()
        run.close()
    c = p.counters()
    assert c["processed"] == 200 and c["dropped"] == 0 and seqs == sorted(seqs)
    g = run.gate
    assert g.offered == 200 and g.sampled == 200
    assert g.skipped > 0 and g.taken + g.skipped == g.sampled, g
