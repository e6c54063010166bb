"""Updates through the real agent: ``edge-agent run`` with a real mosquitto, a registry
served by nginx, real models; hot swap counted in the pipeline's own counters, trial rollbacks,
the MQTT ``rollback`` command, and SIGKILL at every step of an update."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent.mqtt.testing import Mosquitto, Recorder
from edge_agent.updates import rollout as R
from edge_agent.updates.publish import publish
from edge_agent.updates.store import Store
from tests.support.crafted_models import nan_model, slower_copy
from tests.support.helpers import MODELS, cli_env, run_cli
from tests.support.ops import MjpegCamera, free_port
from tests.support.updates import Nginx, new_key, nginx, seed_store

DIGITS = MODELS / "digits_int8.tflite"
DIGITS_F = MODELS / "digits_float32.tflite"
MOBILENET = MODELS / "mobilenet_v2_int8.tflite"


@dataclass
class World:
    base: Path
    key: Path
    pub: Path
    registry: Path
    server: Nginx
    broker: Mosquitto
    templates: dict[str, Path]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("upd-agent")
    key, pub = new_key(base)
    reg = base / "registry"
    reg.mkdir()
    crafted = base / "crafted"
    crafted.mkdir()
    releases: list[tuple[Path, str, str, int]] = [
        (DIGITS, "digits", "1.0", 1),
        (DIGITS, "digits", "2.0", 2),
        (DIGITS_F, "digitsf", "1.0", 1),
        (nan_model(DIGITS_F, crafted / "digits_float32.tflite"), "digitsf", "2.0-nan", 2),
        (MOBILENET, "mobilenet", "1.0", 1),
        (slower_copy(MOBILENET, crafted / "mobilenet_v2_int8.tflite", copies=7),
         "mobilenet", "2.0-slow", 2),
    ]
    for model, name, version, seq in releases:
        publish(model, name=name, version=version, key=key, to=reg, seq=seq)
    broker = Mosquitto(base / "broker").start()
    try:
        with nginx(reg, base / "nginx") as server:
            templates = {}
            for name, shape in (("digits", [1, 8, 8, 1]), ("digitsf", [1, 8, 8, 1]),
                                ("mobilenet", [1, 224, 224, 3])):
                t = base / f"template-{name}"
                seed_store(t, server.http_url, pub, name, "1.0", shape)
                templates[name] = t
            yield World(base, key, pub, reg, server, broker, templates)
    finally:
        broker.stop()


class Agent:
    """``python -m edge_agent run`` as a child process, watched over MQTT."""

    def __init__(self, world: World, tmp: Path, model: str, camera: str = "synthetic",
                 **updates: Any) -> None:
        self.world = world
        self.device = f"dev-{uuid.uuid4().hex[:8]}"
        self.state = tmp / "state"
        if not self.state.exists():
            shutil.copytree(world.templates[model], self.state)
        self.config = tmp / "agent.toml"
        opts = {"trusted_keys": [str(world.pub)], "registry": world.server.http_url,
                "trial_inferences": 20, "trial_seconds": 20, **updates}
        self.group = f"g-{self.device}"
        lines = [
            "[device]", f'id = "{self.device}"', f'state_dir = "{self.state}"',
            f'groups = ["{self.group}"]',
            "[camera]", f"source = {json.dumps(camera)}", "width = 320", "height = 240",
            "fps = 30", "reconnect_initial_s = 0.2", "reconnect_max_s = 1.0",
            "[metrics]", "interval_s = 0.5",
            "[mqtt]", "enabled = true", 'host = "127.0.0.1"', f"port = {world.broker.port}",
            "[updates]",
        ] + [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.prefix = f"edge/{self.device}"
        self.rec = Recorder(world.broker.port, [f"{self.prefix}/#"],
                            client_id=f"rec-{self.device}", persistent=False)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "agent.log"

    def start(self, **env: str) -> Agent:
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "run", "-c", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=logf, env=cli_env(**env),
            )
        return self

    def wait_online(self, timeout: float = 30) -> dict[str, Any]:
        def ok(r: Recorder) -> bool:
            st = r.on(f"{self.prefix}/status")
            return bool(st) and bool(st[-1].get("online")) and "models" in st[-1]
        assert self.rec.wait(ok, timeout), self.tail()
        status: dict[str, Any] = self.rec.on(f"{self.prefix}/status")[-1]
        return status

    def updates(self, deployment: str | None = None) -> list[dict[str, Any]]:
        recs = self.rec.on(f"{self.prefix}/update")
        return [r for r in recs if deployment in (None, r.get("deployment"))]

    def wait_final(self, deployment: str, timeout: float = 60) -> dict[str, Any]:
        def done(r: Recorder) -> bool:
            return any(x.get("final") for x in self.updates(deployment))
        assert self.rec.wait(done, timeout), (self.updates(deployment), self.tail())
        return [x for x in self.updates(deployment) if x.get("final")][-1]

    def command(self, name: str, params: dict[str, Any], *, tries: int = 10) -> str:
        """Publish a command until the device shows it got it (a reply on the 3.1.1 reply
        topic or, for ``update``, its first record): the status can be online a moment before
        the command subscription is. A repeated id is answered, never run twice."""
        cid = uuid.uuid4().hex[:12]
        body = json.dumps({"id": cid, "params": params}).encode()
        dep = params.get("deployment")

        def got(r: Recorder) -> bool:
            replies = [x for x in r.on(f"{self.prefix}/cmd/{name}/reply") if x.get("id") == cid]
            return bool(replies) or (dep is not None and bool(self.updates(dep)))

        for _ in range(tries):
            self.rec.publish(f"{self.prefix}/cmd/{name}", body, qos=1)
            if self.rec.wait(got, 1.5):
                break
        replies = [x for x in self.rec.on(f"{self.prefix}/cmd/{name}/reply") if x.get("id") == cid]
        assert all(x.get("ok") for x in replies), replies
        return cid

    def metrics(self) -> dict[str, Any]:
        m: dict[str, Any] = self.rec.on(f"{self.prefix}/metrics")[-1]
        return m

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self.stop()
        self.rec.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def running_model_verifies(self) -> dict[str, Any]:
        """The running model (retained status) is a stored file whose sha256 verifies."""
        def fresh(r: Recorder) -> bool:
            st = r.on(f"{self.prefix}/status")
            models = st[-1].get("models") if st else None
            return bool(st[-1].get("online")) and bool(models) and models["trial"] is None
        assert self.rec.wait(fresh, 10), self.rec.on(f"{self.prefix}/status")[-1:]
        running: dict[str, Any] = self.rec.on(f"{self.prefix}/status")[-1]["models"]["running"]
        store = Store(self.state)
        s = store.load()
        assert s.active is not None
        path = store.model_path(s.active)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == s.active.sha256
        assert running["sha256"] == s.active.sha256
        return running


@pytest.fixture()
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for a in made:
        a.close()


def test_push_update_end_to_end_commits_without_dropping_a_frame(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    a = Agent(world, tmp_path, "digits").start()
    agents.append(a)
    st = a.wait_online()
    assert st["models"]["active"] == "digits 1.0" and st["models"]["running"]["source"] == \
        "store:active"
    r = run_cli("fleet", "push-update", a.device, "--model", "digits", "--version", "2.0",
                "--broker", f"127.0.0.1:{world.broker.port}", "--timeout", "60",
                "--deployment", "dep-happy", timeout=90)
    assert r.returncode == 0, (r.stdout, r.stderr, a.tail())
    assert "committed" in r.stdout.splitlines()[-1]
    states = [x["state"] for x in a.updates("dep-happy")]
    assert states[0] == R.RECEIVED and states[-1] == R.COMMITTED
    for s in (R.DOWNLOADING, R.VERIFYING, R.PREFLIGHT, R.ACTIVATING, R.TRIAL):
        assert s in states
    running = a.running_model_verifies()
    assert running["version"] == "2.0"
    # the pipeline's own counters: one swap, no frame lost to it
    assert a.rec.wait(lambda rec: a.metrics()["frames"]["swaps"] >= 1, 10)
    frames = a.metrics()["frames"]
    assert frames["swaps"] == 1 and frames["dropped_by"]["swap"] == 0, frames
    assert frames["errors"] == 0
    listed = run_cli("models", "list", "--json", "-c", str(a.config))
    rows = {x["version"]: x for x in json.loads(listed.stdout)["versions"]}
    assert rows["2.0"]["role"] == "active" and rows["1.0"]["role"] == "previous"
    # the MQTT rollback command takes the device back to 1.0 at once
    a.command("rollback", {})
    assert a.rec.wait(lambda rec: rec.on(f"{a.prefix}/status")[-1]["models"]["active"]
                      == "digits 1.0", 20), a.tail()
    assert a.running_model_verifies()["version"] == "1.0"


def test_rejection_reason_reaches_mqtt_and_the_cli(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    d = world.registry / "digits" / "2.5"
    shutil.copytree(world.registry / "digits" / "2.0", d)
    raw = (d / "manifest.json").read_bytes().replace(b'"version": "2.0"', b'"version": "2.5"')
    (d / "manifest.json").write_bytes(raw)  # altered after signing
    a = Agent(world, tmp_path, "digits").start()
    agents.append(a)
    a.wait_online()
    r = run_cli("fleet", "push-update", "--group", a.group, "--model", "digits", "--version",
                "2.5", "--broker", f"127.0.0.1:{world.broker.port}", "--timeout", "60",
                "--reply-wait", "2", timeout=90)
    assert r.returncode == 1
    assert f"{a.device}: rejected bad_signature" in r.stdout
    final = a.updates()[-1]
    assert final["state"] == R.REJECTED and final["reason"] == "bad_signature"
    listed = run_cli("models", "list", "-c", str(a.config))
    assert "rejected (bad_signature:" in listed.stdout
    assert a.running_model_verifies()["version"] == "1.0"


@pytest.mark.parametrize(
    ("model", "version", "reason"),
    [("mobilenet", "2.0-slow", "slower"), ("digitsf", "2.0-nan", "nonfinite_outputs")],
)
def test_bad_trial_is_rolled_back_automatically(
    world: World, tmp_path: Path, agents: list[Agent], model: str, version: str, reason: str
) -> None:
    a = Agent(world, tmp_path, model).start()
    agents.append(a)
    a.wait_online()
    time.sleep(1.0)  # a baseline of the running model's invoke times
    dep = a.command("update", {"model": model, "version": version, "deployment": "dep-bad"})
    final = a.wait_final("dep-bad")
    assert dep
    assert final["state"] == R.ROLLED_BACK and final["reason"] == reason, final
    assert R.TRIAL in [x["state"] for x in a.updates("dep-bad")]
    running = a.running_model_verifies()
    assert running["version"] == "1.0"
    s = Store(a.state).load()
    assert s.active is not None and s.active.version == "1.0" and s.trial is None
    assert any(b.startswith(f"{model}/{version}-") for b in s.bad)


def test_update_while_the_camera_is_missing_waits_for_it(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    """The trial window stands still while no frame comes: an update started before the camera
    is up commits once it is (it is not rolled back ``no_inferences``); a camera that never
    comes ends the trial ``camera_unavailable`` after ``trial_camera_wait_s``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    (tmp_path / "late").mkdir()
    (tmp_path / "never").mkdir()
    late = Agent(world, tmp_path / "late", "digits", camera=url, trial_seconds=2).start()
    never = Agent(world, tmp_path / "never", "digits", trial_seconds=2, trial_camera_wait_s=4,
                  camera=f"http://127.0.0.1:{free_port()}/stream.mjpg").start()
    agents += [late, never]
    late.wait_online()
    never.wait_online()
    late.command("update", {"model": "digits", "version": "2.0", "deployment": "dep-late"})
    never.command("update", {"model": "digits", "version": "2.0", "deployment": "dep-never"})
    assert late.rec.wait(lambda r: R.TRIAL in [x["state"] for x in late.updates("dep-late")],
                         60), late.tail()
    final = never.wait_final("dep-never")
    assert final["state"] == R.ROLLED_BACK and final["reason"] == "camera_unavailable", final
    assert "no frames for" in final["detail"] and "0 inferences" in final["detail"], final
    assert never.running_model_verifies()["version"] == "1.0"
    # the late device's 2 s window has long passed with no frame: it is still in its trial
    assert not any(x.get("final") for x in late.updates("dep-late")), late.updates("dep-late")
    camera = MjpegCamera(fps=20, port=port)
    try:
        final = late.wait_final("dep-late")
        assert final["state"] == R.COMMITTED, (final, late.tail())
        assert late.running_model_verifies()["version"] == "2.0"
        assert "trial window waits for it" in late.tail()
    finally:
        camera.close()


KILL_POINTS = [R.RECEIVED, R.DOWNLOADING, "downloading:progress", R.VERIFYING, R.PREFLIGHT,
               R.ACTIVATING, R.TRIAL, R.COMMITTED]


def _kill_and_restart(world: World, tmp: Path, point: str, agents: list[Agent]) -> str:
    """One fault: the agent SIGKILLs itself right after persisting ``point``, restarts."""
    attempts = 1 if point == "trial-last-attempt" else 2
    a = Agent(world, tmp, "digits", trial_attempts=attempts, trial_inferences=10)
    agents.append(a)
    a.start(EDGE_AGENT_TEST_KILL_AT=R.TRIAL if attempts == 1 else point)
    a.wait_online()
    dep = "k-" + point.replace(":", "-")
    a.command("update", {"model": "digits", "version": "2.0", "deployment": dep})
    rc = a.wait_exit()
    assert rc == -signal.SIGKILL, (point, rc, a.tail())
    a.start()  # power back: same state dir, no fault injection
    final = a.wait_final(dep)
    running = a.running_model_verifies()
    expected = "1.0" if final["state"] == R.ROLLED_BACK else "2.0"
    assert running["version"] == expected, (point, final, running)
    a.close()
    return str(final["state"])


def test_sigkill_at_every_step_of_an_update(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    points = [*KILL_POINTS, "trial-last-attempt"]
    for p in points:
        (tmp_path / p).mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:  # two devices at a time
        futures = {p: pool.submit(_kill_and_restart, world, tmp_path / p, p, agents)
                   for p in points}
        outcomes = {p: f.result() for p, f in futures.items()}
    assert all(outcomes[p] == R.COMMITTED for p in KILL_POINTS), outcomes
    assert outcomes["trial-last-attempt"] == R.ROLLED_BACK
    # the download killed half way went on from where it was (HTTP Range -> 206)
    log = world.server.access_log.read_text()
    assert '"GET /digits/2.0/digits_int8.tflite HTTP/1.1" 206' in log


def test_polling_device_follows_latest_release(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    """``poll_interval_s``: the device reads <name>/latest.json (written by publish) itself."""
    reg = tmp_path / "poll-registry"
    shutil.copytree(world.registry / "digits" / "1.0", reg / "digits" / "1.0")
    shutil.copytree(world.registry / "digits" / "2.0", reg / "digits" / "2.0")
    (reg / "digits" / "latest.json").write_text('{"version": "2.0", "seq": 2}')
    a = Agent(world, tmp_path, "digits", poll_interval_s=0.5, registry=reg.as_uri()).start()
    agents.append(a)
    a.wait_online()
    assert a.rec.wait(lambda r: any(x.get("final") for x in a.updates()), 60), a.tail()
    final = next(x for x in a.updates() if x.get("final"))
    assert final["state"] == R.COMMITTED and final["version"] == "2.0", final
    assert a.running_model_verifies()["version"] == "2.0"


def test_group_update_with_a_path_for_deployment_is_refused_and_deletes_nothing(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    """One MQTT message to a whole group with ``"deployment": ".."`` (which used to make the
    end-of-update cleanup remove ``models/``): ``bad_params``, and the store is untouched."""
    a = Agent(world, tmp_path, "digits").start()
    agents.append(a)
    a.wait_online()
    models = a.state / "models"
    before = sorted(str(p.relative_to(models)) for p in models.rglob("*"))
    topic = f"edge/group/{a.group}/cmd/update"
    for i, (field, bad) in enumerate([("deployment", ".."), ("deployment", "."),
                                      ("version", "../1.0"), ("model", ".digits"),
                                      ("deployment", "x\x00y"), ("deployment", " d")]):
        cid = f"hostile-{i}"
        params = {"model": "digits", "version": "2.0", "deployment": f"ok-{i}", field: bad}

        def replied(r: Recorder, cid: str = cid) -> bool:
            return any(x.get("id") == cid for x in r.on(f"{a.prefix}/cmd/update/reply"))

        for _ in range(10):  # until the group subscription is up
            a.rec.publish(topic, json.dumps({"id": cid, "params": params}).encode(), qos=1)
            if a.rec.wait(replied, 1.5):
                break
        reply = [x for x in a.rec.on(f"{a.prefix}/cmd/update/reply") if x.get("id") == cid][-1]
        assert not reply["ok"] and reply["error"]["code"] == "bad_params", reply
        assert field in reply["error"]["message"]
    assert a.updates() == []  # no rollout was started
    assert sorted(str(p.relative_to(models)) for p in models.rglob("*")) == before
    assert Store(a.state).load().highest_seq == {"digits": 1}
    assert a.proc is not None and a.proc.poll() is None
    assert a.running_model_verifies()["version"] == "1.0"


def test_model_overrides_survive_a_hot_swap_and_a_rollback(
    world: World, tmp_path: Path, agents: list[Agent]
) -> None:
    """``[model]`` decoder overrides apply to every model the agent loads (one RunnerLoader at
    boot, swap and rollback): the events keep the configured labels and top_k throughout."""
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"L{i}\n" for i in range(10)))
    a = Agent(world, tmp_path, "digits")
    a.config.write_text(a.config.read_text() + f'[model]\ntop_k = 1\nlabels = "{labels}"\n')
    a.start()
    agents.append(a)
    a.wait_online()

    def events_after(ts: float, n: int = 3) -> list[dict[str, Any]]:
        assert a.rec.wait(lambda r: len([e for e in r.on(f"{a.prefix}/events")
                                         if e["ts"] > ts]) >= n, 20), a.tail()
        return [e for e in a.rec.on(f"{a.prefix}/events") if e["ts"] > ts]

    def as_configured(events: list[dict[str, Any]]) -> None:
        for e in events:  # the model's own description says top_k 3 and labels "0".."9"
            assert len(e["classes"]) == 1 and e["classes"][0]["label"].startswith("L"), e

    as_configured(events_after(0.0))
    a.command("update", {"model": "digits", "version": "2.0", "deployment": "dep-over"})
    final = a.wait_final("dep-over")
    assert final["state"] == R.COMMITTED, final
    assert a.running_model_verifies()["version"] == "2.0"
    as_configured(events_after(final["ts"]))
    a.command("rollback", {})
    assert a.rec.wait(lambda rec: rec.on(f"{a.prefix}/status")[-1]["models"]["active"]
                      == "digits 1.0", 20), a.tail()
    back = a.rec.on(f"{a.prefix}/status")[-1]["ts"]
    assert a.running_model_verifies()["version"] == "1.0"
    as_configured(events_after(back))
