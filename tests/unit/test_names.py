"""Identifiers that reach the filesystem: the shared rule (:mod:`edge_agent.common.names`) and every
place a path is built from input, driven with hostile identifiers (hypothesis)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.common import names
from edge_agent.config import parse_config
from edge_agent.errors import ConfigError
from edge_agent.mqtt.errors import CommandError
from edge_agent.updates import errors as E
from edge_agent.updates.component import UpdateComponent
from edge_agent.updates.manifest import check_file_name, parse_manifest
from edge_agent.updates.publish import release_dir
from edge_agent.updates.store import Store
from tests.support.updates import manifest_doc

HOSTILE_FIXED = [
    ".", "..", "/", "\\", "../x", "..\\x", "x/..", "a/b", "a\\b", "/etc/passwd", "\\\\srv\\s",
    "C:evil", "x\x00y", "\x00", "x\ny", "x\ry", "\x1b[31m", "x\x7f", "x\u2028y", "x\u200by",
    ".hidden", "...", ".git", " x", "x ", "\tx", "x\t", " ", "", "x" * 300,
]
SAFE = st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=20)
INJECT = st.sampled_from(
    ["/", "\\", "\x00", "\n", "\r", "\x01", "\x1f", "\x7f", "\u0085", "\u2028", "\u200b"]
)


@st.composite
def hostile(draw: Any) -> str:
    """A name with at least one of the things a path component must not have."""
    base = draw(SAFE)
    how = draw(st.sampled_from(["whole", "inject", "dot", "space_lead", "space_trail"]))
    if how == "whole":
        return str(draw(st.sampled_from(HOSTILE_FIXED)))
    if how == "inject":
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(INJECT) + base[at:]
    if how == "dot":
        return "." + base
    ws = draw(st.sampled_from([" ", "\t", "\u00a0", "\u3000"]))
    return ws + base if how == "space_lead" else base + ws


def strictly_inside(folder: Path, name: str) -> bool:
    joined = os.path.normpath(os.path.join(folder, name))
    return os.path.dirname(joined) == str(folder) and os.path.basename(joined) == name


@pytest.mark.parametrize("bad", HOSTILE_FIXED)
def test_every_fixed_hostile_name_is_refused_with_its_reason(bad: str) -> None:
    why = names.problem(bad)
    assert why is not None
    with pytest.raises(names.UnsafeName, match=r"deployment .* use a plain name"):
        names.check(bad, "deployment")


@pytest.mark.parametrize("good", ["digits", "1.0", "2.0-rc1+b7", "dev_01", "a.b.c", "ünïcode"])
def test_plain_names_pass(good: str) -> None:
    assert names.check(good, "x") == good


@given(st.text(max_size=40))
def test_a_name_that_passes_is_one_component_strictly_inside_its_folder(name: str) -> None:
    if names.problem(name) is None:
        assert strictly_inside(Path("/base/folder"), name)
        assert not name.startswith(".") and name == name.strip()


@given(hostile())
def test_hostile_names_never_pass(name: str) -> None:
    assert names.problem(name) is not None


# -- every path built from input ----------------------------------------------------------------
def _component(tmp: Path) -> UpdateComponent:
    cfg = parse_config({"device": {"id": "dev", "state_dir": str(tmp)},
                        "updates": {"registry": "http://127.0.0.1:9"}})
    comp = UpdateComponent(cfg)
    comp.store = Store(tmp)
    return comp


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=hostile(), field=st.sampled_from(["model", "version", "deployment"]))
def test_update_command_refuses_hostile_ids_with_bad_params(
    tmp_path: Path, bad: str, field: str
) -> None:
    comp = _component(tmp_path)
    params = {"model": "digits", "version": "2.0", "deployment": "d1", field: bad}
    if field == "deployment" and not bad:
        return  # no deployment given: the device makes one up
    with pytest.raises(CommandError) as err:
        comp.cmd_update(params)
    assert err.value.code == "bad_params"
    assert field in str(err.value)
    assert not (tmp_path / "models").exists()  # refused before anything was written


def test_update_command_refuses_a_non_string_deployment(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a string"):
        _component(tmp_path).cmd_update({"model": "m", "version": "1", "deployment": ["x"]})


@settings(max_examples=200)
@given(hostile())
def test_manifest_file_names_name_and_version_refuse_hostile_values(bad: str) -> None:
    with pytest.raises(E.BadFileName):
        check_file_name(bad)
    for key in ("name", "version"):
        doc = manifest_doc(**{key: bad})
        with pytest.raises(E.ManifestInvalid):
            parse_manifest(json.dumps(doc).encode(), "m")


@settings(max_examples=200)
@given(hostile())
def test_config_refuses_hostile_device_id_and_groups(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"device\.id"):
        parse_config({"device": {"id": bad}})
    with pytest.raises(ConfigError, match=r"device\.groups"):
        parse_config({"device": {"id": "ok", "groups": ["fine", bad]}})


@settings(max_examples=200)
@given(bad=hostile(), field=st.sampled_from(["name", "version"]))
def test_publish_refuses_hostile_name_or_version_before_writing(bad: str, field: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        to = Path(d) / "reg"
        args = {"name": "digits", "version": "1.0", field: bad}
        with pytest.raises(E.UnsafeReleaseName, match=f"--{field}"):
            release_dir(to, args["name"], args["version"])
        assert not to.exists() and os.listdir(d) == []


@settings(max_examples=150)
@given(st.one_of(hostile(), st.text(max_size=30)))
def test_store_staging_and_cleanup_stay_inside_staging(deployment: str) -> None:
    """Whatever the id, staging/<id> is inside staging/ and dropping it deletes nothing else."""
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d))
        sentinel = store.versions / "m" / "1-abc"
        sentinel.mkdir(parents=True)
        (store.root / "state.json").write_text("{}")
        try:
            path = store.staging(deployment)
        except E.OutsideStore:
            pass
        else:
            assert store.staging_root.resolve() in path.resolve().parents
        try:
            store.drop_staging(deployment)
        except E.OutsideStore:
            pass
        store.gc(1, store.load())
        assert sentinel.is_dir() and (store.root / "state.json").is_file()


@pytest.mark.parametrize("target", ["..", ".", "../versions", "../state.json", "x/../.."])
def test_every_store_delete_refuses_a_target_outside_its_folder(
    tmp_path: Path, target: str
) -> None:
    store = Store(tmp_path)
    store.versions.mkdir(parents=True)
    store.staging_root.mkdir()
    (store.root / "state.json").write_text("{}")
    for folder in (store.staging_root, store.versions):
        with pytest.raises(E.OutsideStore, match="not strictly inside"):
            store.remove_tree(folder / target, folder)
    assert (store.root / "state.json").is_file() and store.versions.is_dir()


def test_store_delete_through_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    """versions/<name> planted as a symlink to elsewhere: gc/discard must not delete there."""
    store = Store(tmp_path / "state")
    store.versions.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "1.0-abc").mkdir(parents=True)
    os.symlink(elsewhere, store.versions / "m")
    with pytest.raises(E.OutsideStore):
        store.remove_tree(store.versions / "m" / "1.0-abc", store.versions)
    assert (elsewhere / "1.0-abc").is_dir()
