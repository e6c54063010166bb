"""Releases carry their report: quantize -> compare --report -> registry publish --report puts
the evaluation into the signed manifest; the device's updater carries it in its update
records, and `models list` / `models inspect` show it for the installed version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.errors import ExitCode
from tests.support.helpers import run_cli
from tests.support.inference import digits_folders, model_path
from tests.support.updates import new_key


def install(state_dir: Path, registry: Path, pub: Path, name: str, version: str) -> list[dict]:
    """Install through the real updater (manifest checks, download, preflight); its records."""
    from edge_agent.config import UpdatesConfig
    from edge_agent.updates.keys import TrustStore
    from edge_agent.updates.state import commit_trial
    from edge_agent.updates.store import Store
    from edge_agent.updates.updater import Updater, new_deployment

    records: list[dict[str, Any]] = []
    up = Updater(UpdatesConfig(trusted_keys=[pub]), Store(state_dir),
                 TrustStore.from_files([pub]), publish=records.append)
    r = up.start(new_deployment(name, version, registry.as_uri()))
    assert up.prepare(r, input_shape=[1, 8, 8, 1], runtime="litert") is not None, records
    up.advance(r, "swapped")
    up.advance(r, "healthy", change=commit_trial)
    return records


def test_the_report_travels_with_the_release(tmp_path: Path) -> None:
    calib = digits_folders(tmp_path / "calib", 0, 60)
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in calib.rglob("*.png"):
        f.rename(flat / f.name)
    int8 = tmp_path / "digits_q8.tflite"
    report = tmp_path / "R.json"
    r = run_cli("models", "quantize", str(model_path("digits_float32.tflite")), "--calibrate",
                str(flat), "--frames", "40", "--out", str(int8), "--report", str(report))
    assert r.returncode == 0, r.stderr
    truth = digits_folders(tmp_path / "truth", 60, 200)
    r = run_cli("models", "compare", str(model_path("digits_float32.tflite")), str(int8),
                "--truth", str(truth), "--runs", "10", "--report", str(report))
    assert r.returncode == 0, r.stderr
    doc = json.loads(report.read_text())
    assert set(doc) == {"quantize", "compare"}  # the two commands share the file
    summary = doc["compare"]["summary"]
    assert summary.startswith("digits_q8: ") and "points top-1" in summary

    key, pub = new_key(tmp_path)
    reg = tmp_path / "reg"
    r = run_cli("registry", "publish", str(int8), "--name", "digits", "--version", "5.0",
                "--key", str(key), "--to", str(reg), "--report", str(report), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["evaluation"] == summary
    manifest = json.loads((reg / "digits" / "5.0" / "manifest.json").read_text())
    ev = manifest["evaluation"]
    assert ev["summary"] == summary
    assert ev["reference"]["name"] == "digits_float32"
    assert ev["accuracy"]["metric"] == "top-1" and ev["frames"] == 140
    assert ev["quantize"]["mode"] == "int8" and ev["quantize"]["calibration_frames"] == 40

    state = tmp_path / "state"
    records = install(state, reg, pub, "digits", "5.0")
    states = [(x["state"], x.get("evaluation")) for x in records]
    assert states[0] == ("received", None)  # before the manifest is read
    assert all(e == summary for s, e in states[1:]), states  # accepted ... committed
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nstate_dir = "{state}"\n')
    r = run_cli("models", "list", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert f"    evaluated: {summary}" in r.stdout
    r = run_cli("models", "list", "-c", str(cfg), "--json")
    (row,) = json.loads(r.stdout)["versions"]
    assert row["evaluation"]["summary"] == summary
    installed = next((state / "models" / "versions" / "digits").glob("5.0-*")) / int8.name
    r = run_cli("models", "inspect", str(installed))
    assert r.returncode == 0 and f"evaluated {summary}" in r.stdout
    r = run_cli("models", "inspect", str(int8), "--json")  # not a release: no evaluation
    assert json.loads(r.stdout)["evaluation"] is None


def test_publish_refuses_a_report_about_another_model(tmp_path: Path) -> None:
    report = tmp_path / "R.json"
    r = run_cli("models", "compare", str(model_path("digits_float32.tflite")),
                str(model_path("digits_int8.tflite")), "--truth",
                str(digits_folders(tmp_path / "t", 0, 20)), "--runs", "5", "--report", str(report))
    assert r.returncode == 0, r.stderr
    key, _ = new_key(tmp_path)
    reg = tmp_path / "reg"
    r = run_cli("registry", "publish", str(model_path("digits_float32.tflite")), "--name", "d",
                "--version", "1", "--key", str(key), "--to", str(reg), "--report", str(report))
    assert r.returncode == ExitCode.PUBLISH_REFUSED
    assert "the comparison is about digits_int8" in r.stderr and r.stderr.count("\n") == 1
    assert not (reg / "d" / "1" / "manifest.json").exists()
    other = tmp_path / "other.json"
    other.write_text('{"quantize": {}}')
    r = run_cli("registry", "publish", str(model_path("digits_int8.tflite")), "--name", "d",
                "--version", "1", "--key", str(key), "--to", str(reg), "--report", str(other))
    assert r.returncode == ExitCode.PUBLISH_REFUSED and "not a `models compare" in r.stderr
