"""A damaged ``models/state.json``: never treated as empty, never a crash. Recovery order:
``state.json.prev`` (the generation before the last write), else what the signed manifests in
``versions/`` prove; ``highest_seq`` is raised to every verified installed version's seq."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.updates import state as S
from edge_agent.updates.keys import TrustStore, load_private, sign
from edge_agent.updates.store import Store
from tests.support.updates import manifest_doc, new_key, sha

DAMAGE = {
    "empty": b"",
    "truncated": b'{"active": {"id": "demo/1-',
    "binary": b"\x00\xff\xfe garbage \x00",
    "list": b"[]",
    "null": b"null",
    "string": b'"state"',
    "highest_seq_list": b'{"highest_seq": []}',
    "highest_seq_value": b'{"highest_seq": {"demo": "many"}}',
    "active_number": b'{"active": 5}',
    "entry_missing_fields": b'{"active": {"id": "demo/1-abc"}}',
    "entry_id_escapes": json.dumps({"active": {
        "id": "../../etc", "name": "demo", "version": "1", "seq": 1, "sha256": "0" * 64,
        "size": 1, "file": "model.tflite"}}).encode(),
    "entry_file_escapes": json.dumps({"active": {
        "id": "demo/1-abc", "name": "demo", "version": "1", "seq": 1, "sha256": "0" * 64,
        "size": 1, "file": "../../model.tflite"}}).encode(),
    "bad_list_of_numbers": b'{"bad": [1, 2]}',
    "trial_null_entry": b'{"trial": {"entry": null, "attempts_left": 1, "deployment": "d"}}',
}


def install_signed(store: Store, key: Path, version: str, seq: int, data: bytes,
                   created: str = "2026-01-01T00:00:00+00:00") -> S.Entry:
    """An installed version as the updater leaves it: signed manifest + model file."""
    doc = manifest_doc(version=version, seq=seq, files={"model.tflite": data})
    doc["created"] = created
    raw = json.dumps(doc).encode()
    vdir = store.versions / "demo" / f"{version}-{sha(data)[:12]}"
    vdir.mkdir(parents=True)
    (vdir / "manifest.json").write_bytes(raw)
    (vdir / "manifest.json.sig").write_bytes(sign(load_private(key), raw))
    (vdir / "model.tflite").write_bytes(data)
    return S.Entry(f"demo/{vdir.name}", "demo", version, seq, sha(data), len(data),
                   "model.tflite")


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, TrustStore, Path]:
    key, pub = new_key(tmp_path / "keys")
    other, _ = new_key(tmp_path / "keys", "other.key")
    return key, TrustStore.from_files([pub]), other


def two_generations(store: Store, key: Path) -> tuple[S.StoreState, S.StoreState]:
    a = install_signed(store, key, "1.0", 1, b"\0\0\0\0TFL3 one", "2026-01-01T00:00:00+00:00")
    b = install_signed(store, key, "2.0", 2, b"\0\0\0\0TFL3 two", "2026-02-01T00:00:00+00:00")
    first = S.StoreState(active=a, highest_seq={"demo": 1})
    second = S.StoreState(active=b, previous=a, highest_seq={"demo": 2}, bad=("demo/x",))
    store.save(first)
    store.save(second)
    return first, second


def test_each_save_keeps_the_previous_generation(tmp_path: Path, keys: tuple) -> None:
    store = Store(tmp_path, keys[1])
    first, second = two_generations(store, keys[0])
    assert S.StoreState.from_json(json.loads(store.prev_path.read_bytes())) == first
    assert store.load() == second


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_state_recovers_from_the_previous_generation(
    tmp_path: Path, keys: tuple, case: str
) -> None:
    store = Store(tmp_path, keys[1])
    first, _second = two_generations(store, keys[0])
    store.state_path.write_bytes(DAMAGE[case])
    s = store.load()
    assert s.recovered is not None and s.recovered.source == "state.json.prev"
    assert str(store.state_path) in s.recovered.problem and "\n" not in s.recovered.problem
    # the previous generation, with highest_seq raised to what versions/ proves (2.0 is there)
    assert s.active == first.active and s.highest_seq == {"demo": 2}
    aside = Path(s.recovered.aside)
    assert aside.name.startswith("state.json.damaged-") and aside.read_bytes() == DAMAGE[case]
    again = Store(tmp_path, keys[1]).load()  # written back: a whole file again
    assert again == s
    assert S.recovery_record(again)["state"] == "recovered"


def test_both_damaged_rebuilds_what_versions_prove(tmp_path: Path, keys: tuple) -> None:
    key, trust, other = keys
    store = Store(tmp_path, trust)
    _first, second = two_generations(store, key)
    # a newer version signed by an untrusted key, and one whose model bytes changed: not proof
    install_signed(store, other, "9.0", 9, b"\0\0\0\0TFL3 nine", "2026-09-01T00:00:00+00:00")
    e8 = install_signed(store, key, "8.0", 8, b"\0\0\0\0TFL3 eight", "2026-08-01T00:00:00+00:00")
    (store.dir_of(e8) / "model.tflite").write_bytes(b"\0\0\0\0TFL3 tampered")
    store.state_path.write_bytes(b"[]")
    store.prev_path.write_bytes(b"{half")
    s = store.load()
    assert s.recovered is not None and s.recovered.source == "versions/"
    assert "state.json.prev" in s.recovered.problem
    assert s.active == second.active and s.previous == second.previous
    assert s.highest_seq == {"demo": 2}  # 9 (untrusted) and 8 (tampered) prove nothing
    assert s.trial is None and s.deployment is None
    assert Store(tmp_path, trust).load() == s


def test_a_lost_state_json_with_versions_installed_is_damage(
    tmp_path: Path, keys: tuple
) -> None:
    store = Store(tmp_path, keys[1])
    _first, second = two_generations(store, keys[0])
    store.state_path.unlink()
    s = store.load()
    assert s.recovered is not None and "missing" in s.recovered.problem
    assert s.active == second.previous and s.highest_seq == {"demo": 2}  # from .prev


def test_without_trusted_keys_nothing_is_proven_and_nothing_written(
    tmp_path: Path, keys: tuple
) -> None:
    store = Store(tmp_path, keys[1])
    two_generations(store, keys[0])
    store.state_path.write_bytes(b"null")
    store.prev_path.write_bytes(b"null")
    blind = Store(tmp_path)  # no keys: versions/ cannot be verified
    s = blind.load()
    assert s.recovered is not None and s.active is None and s.highest_seq == {}
    assert store.state_path.read_bytes() == b"null"  # left for a start that has the keys
    fixed = Store(tmp_path, keys[1]).load()
    assert fixed.active is not None and fixed.highest_seq == {"demo": 2}


def test_inspect_is_read_only(tmp_path: Path, keys: tuple) -> None:
    store = Store(tmp_path, keys[1])
    two_generations(store, keys[0])
    store.state_path.write_bytes(b"[]")
    s, problem = store.inspect()
    assert problem is not None and "wrong shape" in problem and s.recovered is not None
    assert store.state_path.read_bytes() == b"[]"
    assert not list(store.root.glob("state.json.damaged-*"))


def test_the_recovery_note_clears_when_an_update_commits(tmp_path: Path, keys: tuple) -> None:
    store = Store(tmp_path, keys[1])
    two_generations(store, keys[0])
    store.state_path.write_bytes(b"[]")
    s = store.load()
    assert s.recovered is not None
    e3 = install_signed(store, keys[0], "3.0", 3, b"\0\0\0\0TFL3 three")
    s = S.commit_trial(S.begin_trial(s, e3, 1, "d3"))
    assert s.recovered is None and S.recovery_record(s) == {"state": "ok"}


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["active", "previous", "trial", "bad", "highest_seq",
                                       "deployment", "recovered", "id", "seq", "x"]),
                      inner, max_size=4),
    max_leaves=12,
))
def test_any_json_in_state_json_never_crashes_loading(tmp_path: Path, doc: object) -> None:
    store = Store(tmp_path / "s")
    store.root.mkdir(parents=True, exist_ok=True)
    store.state_path.write_text(json.dumps(doc))
    store.prev_path.unlink(missing_ok=True)
    s = store.load()
    assert isinstance(s, S.StoreState)
    for e in (s.active, s.previous):
        if e is not None:
            assert store.versions.resolve() in store.dir_of(e).resolve().parents


def test_rebuild_picks_the_newest_by_created_time_then_seq() -> None:
    def e(v: str, seq: int, name: str = "demo") -> S.Entry:
        return S.Entry(f"{name}/{v}-abc", name, v, seq, "0" * 64, 1, "model.tflite")

    old, new, other = e("1", 5), e("2", 3), e("9", 9, "cats")
    s = S.rebuild([(old, 100.0), (new, 200.0), (other, 150.0)])
    assert s.active == new and s.previous == old  # created wins over seq; same name only
    assert S.raise_seq(s, [(old, 0.0), (other, 0.0)]).highest_seq == {"demo": 5, "cats": 9}
    assert S.rebuild([]) == S.StoreState()
