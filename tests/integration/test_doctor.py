"""`edge-agent doctor` against the real things: each check fails alone and names its fix."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.support.helpers import MODELS, cli_env, run_cli
from tests.support.ops import free_port, mosquitto

MODEL = f'[model]\npath = "{MODELS / "digits_int8.tflite"}"\n'


def _doctor(
    tmp_path: Path, toml: str, human: bool = False, **env: str
) -> tuple[int, dict[str, dict[str, str]], str]:
    """doctor --json (and the human text when asked) for a config with ``toml`` in it."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n' + toml)
    r = run_cli("doctor", "--json", "--config", str(cfg), env=cli_env(**env))
    assert "Traceback" not in r.stderr, r.stderr
    data = json.loads(r.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert data["ok"] == (r.returncode == 0)
    text = run_cli("doctor", "--config", str(cfg), env=cli_env(**env)).stdout if human else ""
    return r.returncode, checks, text


def _only_failure(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    failed = [c for c in checks.values() if c["status"] == "FAIL"]
    assert len(failed) == 1, failed
    assert failed[0]["fix"], failed[0]
    return failed[0]


@pytest.fixture
def fake_models(tmp_path: Path) -> Path:
    """A copy of a shipped model and its line of the models/README.md sha256 table."""
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(MODELS / "digits_int8.tflite", d / "digits_int8.tflite")
    line = next(
        ln for ln in (MODELS / "README.md").read_text().splitlines()
        if "`digits_int8.tflite`" in ln and re.search(r"[0-9a-f]{64}", ln)
    )
    (d / "README.md").write_text(f"| file | bytes | sha256 |\n|---|---:|---|\n{line}\n")
    return d


def test_missing_model(tmp_path: Path) -> None:
    rc, checks, human = _doctor(
        tmp_path, f'[model]\npath = "{tmp_path / "nope.tflite"}"\n', human=True
    )
    assert rc == 1
    assert _only_failure(checks)["name"] == "model"
    assert "model file missing" in checks["model"]["detail"]
    assert "fix: restore the file" in human


def test_bad_sha256(tmp_path: Path, fake_models: Path) -> None:
    model = fake_models / "digits_int8.tflite"
    rc, checks, _ = _doctor(tmp_path, f'[model]\npath = "{model}"\n',
                            EDGE_AGENT_MODELS_DIR=str(fake_models))
    assert checks["model"]["status"] == "PASS", checks["model"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights: still loads, wrong answers
    model.write_bytes(bytes(data))
    rc, checks, _human = _doctor(tmp_path, f'[model]\npath = "{model}"\n',
                                EDGE_AGENT_MODELS_DIR=str(fake_models))
    assert rc == 1
    assert _only_failure(checks)["name"] == "model"
    assert "sha256 mismatch" in checks["model"]["detail"]
    assert "rollback" in checks["model"]["fix"]


def test_store_model_bad_sha256(tmp_path: Path) -> None:
    """The model the store would boot is checked against the sha256 recorded at install."""
    import hashlib

    from edge_agent.updates.state import Entry, StoreState
    from edge_agent.updates.store import Store

    data = b"TFL3" + bytes(range(200)) * 3
    digest = hashlib.sha256(data).hexdigest()
    store = Store(tmp_path / "state")
    entry = Entry(id=f"digits/1.0-{digest[:12]}", name="digits", version="1.0", seq=1,
                  sha256=digest, size=len(data), file="digits.tflite")
    vdir = store.ensure_dir(store.versions / "digits" / f"1.0-{digest[:12]}")
    (vdir / "digits.tflite").write_bytes(data)
    store.save(StoreState(active=entry))
    rc, checks, _ = _doctor(tmp_path, "")
    assert checks["model"]["status"] == "PASS", checks["model"]
    assert "model store (digits 1.0)" in checks["model"]["detail"]
    (vdir / "digits.tflite").write_bytes(data[:-1] + b"X")
    rc, checks, _ = _doctor(tmp_path, "")
    assert rc == 1
    assert "sha256 mismatch" in checks["model"]["detail"]
    assert "model store (digits 1.0)" in checks["model"]["detail"]


def test_missing_delegate(tmp_path: Path) -> None:
    rc, checks, _ = _doctor(tmp_path, MODEL)
    assert rc == 0, checks
    assert "digits_int8.tflite on cpu" in checks["backend"]["detail"]
    rc, checks, _ = _doctor(tmp_path, MODEL + '[[model.delegates]]\nlibrary = "libedgetpu.so.1"\n')
    assert rc == 1
    assert _only_failure(checks)["name"] == "backend"
    assert "delegate failed: libedgetpu.so.1" in checks["backend"]["detail"]
    assert "[[model.delegates]]" in checks["backend"]["fix"]


def test_camera_absent(tmp_path: Path) -> None:
    rc, checks, _ = _doctor(tmp_path, MODEL + '[camera]\nsource = "/dev/video97"\n')
    assert rc == 1
    assert _only_failure(checks)["name"] == "camera"
    cam = checks["camera"]
    assert cam["status"] == "FAIL" and "/dev/video97" in cam["detail"]
    assert "camera.source" in cam["fix"]


def test_broker_down(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as (_proc, port):
        rc, checks, _ = _doctor(tmp_path, f"[mqtt]\nenabled = true\nport = {port}\n")
        assert checks["broker"]["status"] == "PASS", checks["broker"]
    # the same broker, stopped
    rc, checks, _ = _doctor(tmp_path, MODEL + f"[mqtt]\nenabled = true\nport = {port}\n")
    assert rc == 1
    assert _only_failure(checks)["name"] == "broker"
    assert "connection refused" in checks["broker"]["detail"]
    assert "start the broker" in checks["broker"]["fix"]


def test_wrong_broker_password(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    with mosquitto(tmp_path, users={"cam1": "right-horse-battery"}) as (_, port):
        base = MODEL + f'[mqtt]\nenabled = true\nport = {port}\nusername = "cam1"\n'
        pw.write_text("right-horse-battery\n")
        rc, checks, _ = _doctor(tmp_path, base + f'password_file = "{pw}"\n')
        assert checks["broker"]["status"] == "PASS", checks["broker"]
        pw.write_text("wrong-staple\n")
        for proto in ("5", "3.1.1"):
            rc, checks, human = _doctor(
                tmp_path, base + f'password_file = "{pw}"\nprotocol = "{proto}"\n', human=True
            )
            assert rc == 1
            assert _only_failure(checks)["name"] == "broker"
            assert "refused the connection" in checks["broker"]["detail"]
            assert "password" in checks["broker"]["fix"]
            assert "wrong-staple" not in human


def test_no_serial_port(tmp_path: Path) -> None:
    rc, checks, _ = _doctor(tmp_path, MODEL + '[bridge]\nenabled = true\nport = "/dev/ttyNOPE9"\n')
    assert rc == 1
    assert _only_failure(checks)["name"] == "serial"
    assert "/dev/ttyNOPE9" in checks["serial"]["detail"]
    assert "bridge.port" in checks["serial"]["fix"]


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")
def test_serial_hello_with_the_firmware_simulator(tmp_path: Path) -> None:
    from firmware_bridge.testing import SimPort

    with SimPort(tmp_path) as sim:
        _rc, checks, _ = _doctor(tmp_path, f'[bridge]\nenabled = true\nport = "{sim.url}"\n')
    assert checks["serial"]["status"] == "PASS", checks["serial"]
    assert "firmware" in checks["serial"]["detail"]


def test_registry_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/registry"
    _rc, checks, _ = _doctor(tmp_path, f'[updates]\nregistry = "{url}"\n')
    assert checks["registry"]["status"] == "FAIL"
    assert "unreachable" in checks["registry"]["detail"]


def test_registry_over_https_needs_its_ca(tmp_path: Path) -> None:
    from tests.support.updates import make_ca, nginx

    (tmp_path / "registry").mkdir()
    ca = make_ca(tmp_path / "ca")
    with nginx(tmp_path / "registry", tmp_path / "nginx", tls=ca) as srv:
        base = f'[updates]\nregistry = "{srv.https_url}/"\n'
        rc, checks, _ = _doctor(tmp_path, MODEL + base + f'ca = "{ca.ca}"\n')
        assert rc == 0 and checks["registry"]["status"] == "PASS", checks["registry"]
        rc, checks, _ = _doctor(tmp_path, MODEL + base)  # the system CAs do not know it
        assert rc == 1 and _only_failure(checks)["name"] == "registry"
        assert "CERTIFICATE_VERIFY_FAILED" in checks["registry"]["detail"]
        assert "updates.ca" in checks["registry"]["fix"]


def test_invalid_config_skips_the_rest(tmp_path: Path) -> None:
    rc, checks, _ = _doctor(tmp_path, "[camera]\nsorce = 1\n")
    assert rc == 1
    assert checks["config"]["status"] == "FAIL" and "camera.sorce" in checks["config"]["detail"]
    assert {c["status"] for n, c in checks.items() if n != "config"} == {"SKIP"}


def test_disk_and_clock_pass(tmp_path: Path, fake_models: Path) -> None:
    _rc, checks, _ = _doctor(tmp_path, f'[model]\npath = "{fake_models / "factory.tflite"}"\n',
                            EDGE_AGENT_MODELS_DIR=str(fake_models))
    assert checks["clock"]["status"] == "PASS"
    assert checks["disk"]["status"] in ("PASS", "WARN")


def test_config_file_missing(tmp_path: Path) -> None:
    r = run_cli("doctor", "--json", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 1
    config = json.loads(r.stdout)["checks"][0]
    assert config["status"] == "FAIL" and "config file not found" in config["detail"]
    assert "--config" in config["fix"]
