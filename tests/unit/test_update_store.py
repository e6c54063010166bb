"""Store state transitions (pure), the rollout table, and the on-disk store."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.updates import errors as E
from edge_agent.updates import rollout as R
from edge_agent.updates import state as S
from edge_agent.updates.store import Store
from tests.support.updates import manifest_doc, sha


def entry(version: str, seq: int, data: bytes = b"m") -> S.Entry:
    return S.Entry(f"demo/{version}-{sha(data)[:12]}", "demo", version, seq, sha(data),
                   len(data), "model.tflite")


def test_trial_commit_and_rollback_transitions() -> None:
    a, b = entry("1", 1), entry("2", 2)
    s = S.StoreState(active=a)
    s = S.begin_trial(s, b, attempts=2, deployment="d1")
    assert s.highest_seq == {"demo": 2}
    s = S.consume_attempt(s)
    assert s.trial is not None and s.trial.attempts_left == 1
    committed = S.commit_trial(s)
    assert committed.active == b and committed.previous == a and committed.trial is None
    abandoned = S.abandon_trial(s)
    assert abandoned.active == a and b.id in abandoned.bad
    back = S.rollback(committed)
    assert back.active == a and back.previous == b
    assert S.StoreState.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_rollback_without_previous_is_refused() -> None:
    with pytest.raises(ValueError):
        S.rollback(S.StoreState(active=entry("1", 1)))


def test_rollout_table_paths_and_illegal_event() -> None:
    r = R.Rollout(S.Deployment("d", "demo", "2", "file:///r"))
    for ev in ("accepted", "progress", "downloaded", "verified", "passed", "swapped", "healthy"):
        r.handle(ev)
    assert r.state == R.COMMITTED and r.final
    with pytest.raises(R.IllegalTransition, match="'healthy' is not allowed in state 'committed'"):
        r.handle("healthy")
    r2 = R.Rollout(S.Deployment("d", "demo", "2", "x"))
    d = r2.handle("reject", reason="bad_signature", detail="...")
    assert d.state == R.REJECTED and d.final and not d.sent
    assert R.record(d)["reason"] == "bad_signature"
    for s in R.STATES:
        if s not in R.FINAL:
            assert R.TRANSITIONS[(s, "abort")] == R.FAILED


def install(store: Store, version: str, seq: int, data: bytes) -> S.Entry:
    st = store.staging(f"dep-{version}")
    doc = manifest_doc(version=version, seq=seq, files={"model.tflite": data})
    (st / "manifest.json").write_text(json.dumps(doc))
    (st / "model.tflite").write_bytes(data)
    e = entry(version, seq, data)
    store.install(st, e)
    return e


def test_store_install_verify_and_gc_keep_active_and_previous(tmp_path: Path) -> None:
    store = Store(tmp_path)
    es = [install(store, str(v), v, f"model {v}".encode()) for v in range(1, 6)]
    assert [e.id for e in store.installed()] == [e.id for e in es]
    store.verify(es[0])
    s = S.StoreState(active=es[0], previous=es[1])
    store.save(s)
    assert store.load() == s
    removed = store.gc(2, s)  # newest two (4, 5) + active + previous
    left = {e.id for e in store.installed()}
    assert left == {es[0].id, es[1].id, es[3].id, es[4].id}
    assert removed == [es[2].id]


def test_corrupt_model_is_detected(tmp_path: Path) -> None:
    store = Store(tmp_path)
    e = install(store, "1", 1, b"abc")
    store.model_path(e).write_bytes(b"abd")
    with pytest.raises(E.CorruptModel, match="no longer matches"):
        store.verify(e)


def test_symlink_planted_in_store_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    outside = tmp_path / "outside"
    outside.mkdir()
    store.ensure_dir(store.versions)
    os.symlink(outside, store.versions / "demo")
    with pytest.raises(E.SymlinkInStore, match="symlink"):
        install(store, "1", 1, b"abc")
    assert list(outside.iterdir()) == []


def test_symlink_inside_staging_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    st = store.staging("dep")
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", st / "model.tflite")
    with pytest.raises(E.SymlinkInStore):
        store.install(st, entry("1", 1, b"x"))


def test_state_json_written_atomically(tmp_path: Path) -> None:
    store = Store(tmp_path)
    s = S.StoreState(active=entry("1", 1))
    store.save(s)
    store.save(replace(s, bad=("x",)))
    names = os.listdir(store.root)
    assert names.count("state.json") == 1 and not [n for n in names if ".tmp" in n]
    assert store.load().bad == ("x",)
