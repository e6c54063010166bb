"""Every way an update is refused, through the real Updater: a real registry served by nginx,
real models, the preflight subprocess. Each leaves the active model untouched (its sha256
still verifies) and ends in its own reason, published as it would be on ``<p>/update``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.config import UpdatesConfig
from edge_agent.updates import rollout as R
from edge_agent.updates.fetch import Fetcher
from edge_agent.updates.keys import TrustStore, load_private, sign
from edge_agent.updates.publish import publish
from edge_agent.updates.state import commit_trial
from edge_agent.updates.store import Store
from edge_agent.updates.updater import Updater, new_deployment
from tests.support.crafted_models import crashing_model
from tests.support.helpers import MODELS
from tests.support.updates import CertAuthority, Nginx, make_ca, new_key, nginx, sha

DIGITS = MODELS / "digits_int8.tflite"
MOBILENET = MODELS / "mobilenet_v2_int8.tflite"
SHAPE = [1, 8, 8, 1]


@dataclass
class Env:
    registry: Path
    key: Path
    other_key: Path
    pub: Path
    server: Nginx
    ca: CertAuthority
    work: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("upd")
    key, pub = new_key(base)
    other, _ = new_key(base, "other.key")
    ca = make_ca(base / "ca")
    reg = base / "registry"
    reg.mkdir()
    with nginx(reg, base / "nginx", tls=ca) as server:
        yield Env(reg, key, other, pub, server, ca, base)


seq_counter = iter(range(1000, 100000))


def release(env: Env, version: str, model: Path = DIGITS, **kw: Any) -> Path:
    kw.setdefault("seq", next(seq_counter))
    return publish(model, name="digits", version=version, key=env.key, to=env.registry,
                   **kw).directory


def resign(d: Path, key: Path, change: Callable[[dict[str, Any]], Any] | None = None,
           raw: bytes | None = None) -> None:
    if raw is None:
        doc = json.loads((d / "manifest.json").read_bytes())
        if change is not None:
            change(doc)
        raw = json.dumps(doc, indent=1).encode()
    (d / "manifest.json").write_bytes(raw)
    (d / "manifest.json.sig").write_bytes(sign(load_private(key), raw))


@dataclass
class Device:
    store: Store
    updater: Updater
    records: list[dict[str, Any]]
    active_sha: str

    def update(self, version: str, registry: str) -> dict[str, Any]:
        self.records.clear()
        r = self.updater.start(new_deployment("digits", version, registry))
        prepared = self.updater.prepare(r, input_shape=SHAPE, runtime="litert")
        assert prepared is None, "expected the update to be refused"
        return self.records[-1]

    def assert_untouched(self) -> None:
        s = self.store.load()
        assert s.active is not None and s.active.sha256 == self.active_sha and s.trial is None
        self.store.verify(s.active)


def make_device(env: Env, tmp: Path, **cfg: Any) -> Device:
    """A store whose active model is digits 1.0, installed once through the updater itself
    (a copy of that store is handed to each test)."""
    template = env.work / "template"
    if not template.exists():
        release(env, "1.0", seq=1)
        dev = _device(env, env.work / "building")
        r = dev.updater.start(new_deployment("digits", "1.0", env.server.http_url))
        prepared = dev.updater.prepare(r, input_shape=SHAPE, runtime="litert")
        assert prepared is not None, dev.records
        dev.updater.advance(r, "swapped")
        dev.updater.advance(r, "healthy", change=commit_trial)
        shutil.copytree(env.work / "building", template, symlinks=True)
    shutil.copytree(template, tmp / "state-root", symlinks=True)
    dev = _device(env, tmp / "state-root")
    for k, v in cfg.items():  # the device's settings for the update under test
        setattr(dev.updater.cfg, k, v)
    return dev


def _device(env: Env, root: Path) -> Device:
    conf = UpdatesConfig(trusted_keys=[env.pub], ca=env.ca.ca)
    store = Store(root / "state")
    records: list[dict[str, Any]] = []
    up = Updater(conf, store, TrustStore.from_files([env.pub]), publish=records.append,
                 fetcher=Fetcher(ca=env.ca.ca, backoff_s=0.01))
    s = store.load()
    return Device(store, up, records, s.active.sha256 if s.active else "")


def test_happy_path_over_http_https_and_file(env: Env, tmp_path: Path) -> None:
    dev = make_device(env, tmp_path)
    release(env, "2.0")
    for i, base in enumerate([env.server.http_url, env.server.https_url,
                              env.registry.as_uri()]):
        # a fresh device each time: seq 2.0 is new to it
        d = dev if i == 0 else make_device(env, tmp_path / f"d{i}")
        d.records.clear()
        r = d.updater.start(new_deployment("digits", "2.0", str(base)))
        prepared = d.updater.prepare(r, input_shape=SHAPE, runtime="litert")
        assert prepared is not None, d.records
        states = [rec["state"] for rec in d.records]
        assert states[0] == R.RECEIVED and states[-1] == R.ACTIVATING
        assert {R.DOWNLOADING, R.VERIFYING, R.PREFLIGHT} <= set(states)
        progress = [rec["progress"] for rec in d.records if "progress" in rec]
        assert progress and progress[-1] == 1.0
        s = d.store.load()
        assert s.trial is not None and s.trial.entry.version == "2.0"
        assert s.trial.attempts_left == 1  # decremented and persisted before loading
        d.store.verify(s.trial.entry)
        assert s.active is not None and s.active.version == "1.0"


def _wrong_sha(env: Env, d: Path) -> None:
    f = d / "digits_int8.tflite"
    b = bytearray(f.read_bytes())
    b[5000] ^= 0xFF
    f.write_bytes(bytes(b))


def _set_file(name: str) -> Callable[[Env, Path], None]:
    def go(env: Env, d: Path) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["files"].append({"name": name, "size": 4, "sha256": "0" * 64})
        resign(d, env.key, change)
    return go


def _size(delta: int) -> Callable[[Env, Path], None]:
    def go(env: Env, d: Path) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["files"][0]["size"] += delta
        resign(d, env.key, change)
    return go


def _not_tflite(env: Env, d: Path) -> None:
    junk = os.urandom(4096)
    (d / "digits_int8.tflite").write_bytes(junk)

    def change(doc: dict[str, Any]) -> None:
        doc["files"][0].update(size=len(junk), sha256=sha(junk))
    resign(d, env.key, change)


def _golden_wrong(env: Env, d: Path) -> None:
    with np.load(d / "golden.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["output0"] = (arrays["output0"].astype(np.int16) + 50).clip(-128, 127).astype(np.int8)
    np.savez(d / "golden.npz", **arrays)  # type: ignore[arg-type]
    data = (d / "golden.npz").read_bytes()

    def change(doc: dict[str, Any]) -> None:
        for f in doc["files"]:
            if f["name"] == "golden.npz":
                f.update(size=len(data), sha256=sha(data))
    resign(d, env.key, change)


def _lie_about_shape(env: Env, d: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["model"]["inputs"][0]["shape"] = SHAPE
    resign(d, env.key, change)


CASES: dict[str, tuple[str, Callable[[Env, Path], None] | None, dict[str, Any]]] = {
    # name: (expected reason, how to spoil a good release, publish/device options)
    "wrong_sha256": ("wrong_sha256", _wrong_sha, {}),
    "wrong_size": ("wrong_size", _size(+100), {}),
    "larger_than_declared": ("file_too_large", _size(-100), {}),
    "unsigned": ("unsigned", lambda env, d: (d / "manifest.json.sig").unlink(), {}),
    "bad_signature": ("bad_signature", lambda env, d: (d / "manifest.json").write_bytes(
        (d / "manifest.json").read_bytes().replace(b'"seq": ', b'"seq": 1')), {}),
    "unknown_key": ("unknown_key", lambda env, d: resign(d, env.other_key), {}),
    "expired": ("expired", None, {"expires_days": -1.0}),
    "lower_seq": ("downgrade", None, {"seq": 0}),
    "name_slash": ("bad_file_name", _set_file("sub/x.bin"), {}),
    "name_dotdot": ("bad_file_name", _set_file(".."), {}),
    "name_absolute": ("bad_file_name", _set_file("/etc/passwd"), {}),
    "name_nul": ("bad_file_name", _set_file("x\x00.bin"), {}),
    "manifest_over_cap": ("manifest_too_large", None,
                          {"description": {"decoder": {"labels": ["x" * 64] * 64}}}),
    "not_json": ("not_json", lambda env, d: resign(d, env.key, raw=b"\x00{not json"), {}),
    "missing_fields": ("invalid_manifest", lambda env, d: resign(
        d, env.key, lambda doc: doc.pop("files")), {}),
    "not_tflite": ("not_tflite", _not_tflite, {}),
    "other_input_shape": ("input_shape", None, {"model": MOBILENET}),
    "input_shape_lied": ("input_shape", _lie_about_shape, {"model": MOBILENET}),
    "slower_than_budget": ("too_slow", None, {"latency_budget_ms": 0.0001}),
    "golden_mismatch": ("golden_mismatch", _golden_wrong, {"golden": "inputs"}),
    "crashes_interpreter": ("preflight_crashed", None, {"model": "crash"}),
    "preflight_hangs": ("preflight_timeout", None, {"device": {"preflight_timeout_s": 0.05}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_refusal_leaves_the_active_model_with_its_own_reason(
    env: Env, tmp_path: Path, case: str
) -> None:
    reason, spoil, opts = CASES[case]
    opts = dict(opts)
    device_opts = opts.pop("device", {})
    if case == "manifest_over_cap":
        device_opts["max_manifest_bytes"] = 2048
    dev = make_device(env, tmp_path, **device_opts)
    model = opts.pop("model", DIGITS)
    if model == "crash":
        model = crashing_model(DIGITS, tmp_path / "digits_int8.tflite")
    if opts.get("golden") == "inputs":
        g = tmp_path / "golden_in.npz"
        np.savez(g, input0=np.random.default_rng(1).integers(-128, 127, SHAPE).astype(np.int8))
        opts["golden"] = g
    version = f"9.{case}"
    d = release(env, version, model, **opts)
    if spoil is not None:
        spoil(env, d)
    rec = dev.update(version, env.server.http_url)
    assert rec["final"] and rec["reason"] == reason, rec
    assert rec["state"] == R.REJECTED
    assert rec["detail"] and "\n" not in rec["detail"]
    dev.assert_untouched()
    s = dev.store.load()
    assert s.deployment is not None and s.deployment.reason == reason and s.deployment.sent
    assert {e.version for e in dev.store.installed()} == {"1.0"}  # nothing refused kept
    shutil.rmtree(d.parent / version, ignore_errors=True)


def test_symlink_planted_in_the_store_is_refused(env: Env, tmp_path: Path) -> None:
    dev = make_device(env, tmp_path)
    release(env, "9.symlink")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    dev.store.staging_root.mkdir(parents=True, exist_ok=True)
    # the deployment's staging directory is a symlink to somewhere else
    r = dev.updater.start(new_deployment("digits", "9.symlink", env.server.http_url, "dep-sym"))
    os.symlink(outside, dev.store.staging_root / "dep-sym")
    assert dev.updater.prepare(r, input_shape=SHAPE, runtime="litert") is None
    assert dev.records[-1]["reason"] == "symlink_in_store"
    assert list(outside.iterdir()) == []
    dev.assert_untouched()


def test_refused_update_leaves_no_download_behind(env: Env, tmp_path: Path) -> None:
    dev = make_device(env, tmp_path)
    d = release(env, "9.leftovers")
    _wrong_sha(env, d)
    assert dev.update("9.leftovers", env.server.http_url)["reason"] == "wrong_sha256"
    assert not any(dev.store.staging_root.iterdir())
    installed = {e.version for e in dev.store.installed()}
    assert installed == {"1.0"}


@pytest.mark.parametrize("did", ["..", "."])
def test_hostile_deployment_id_deletes_nothing_outside_staging(
    env: Env, tmp_path: Path, did: str
) -> None:
    """The store's own guard, below the command check: an update whose deployment id names the
    store itself (``..``) ends refused and its end-of-update cleanup deletes nothing - state,
    versions and the anti-rollback record stay (before the guard ``..`` removed ``models/``)."""
    dev = make_device(env, tmp_path)
    version = f"9.dep{len(did)}"
    release(env, version)
    before = sorted(p.relative_to(dev.store.root) for p in dev.store.root.rglob("*")
                    if "staging" not in p.parts)
    dev.records.clear()
    r = dev.updater.start(new_deployment("digits", version, env.server.http_url, did))
    assert dev.updater.prepare(r, input_shape=SHAPE, runtime="litert") is None
    assert dev.records[-1]["final"] and dev.records[-1]["reason"] == "unsafe_path"
    after = sorted(p.relative_to(dev.store.root) for p in dev.store.root.rglob("*")
                   if "staging" not in p.parts)
    assert after == before
    assert dev.store.load().highest_seq == {"digits": 1}
    dev.assert_untouched()
    shutil.rmtree(env.registry / "digits" / version, ignore_errors=True)
