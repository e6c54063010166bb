"""The CLI bugs of issue 12, one test each (run in-process through the real ``main``; real
files, a real control socket, a real HTTP server)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_agent.cli.fleet_cmds import parse_params
from edge_agent.cli.main import main
from edge_agent.config import load_config, parse_config
from edge_agent.errors import ConfigError, ExitCode
from edge_agent.ops.control import ControlServer
from edge_agent.ops.status import render
from firmware_bridge.errors import BridgePortError
from firmware_bridge.link import open_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "digits_int8.tflite"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def agent_toml(tmp_path: Path) -> Path:
    f = tmp_path / "agent.toml"
    f.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n[camera]\nsource = "synthetic"\n'
                 '[mqtt]\nenabled = false\n')
    return f


def test_snapshot_into_an_existing_folder(tmp_path: Path, agent_toml: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    code, out, err = _run(capsys, "camera", "snapshot", str(folder), "-c", str(agent_toml))
    assert code == 0, err
    [jpeg] = folder.glob("snapshot-*.jpg")
    assert jpeg.read_bytes()[:2] == b"\xff\xd8" and str(jpeg) in out
    code, out, err = _run(capsys, "camera", "snapshot", str(tmp_path / "no" / "x.jpg"),
                          "-c", str(agent_toml))
    assert code == ExitCode.CONFIG and err.count("\n") == 1 and "does not exist" in err


def test_infer_on_a_folder_says_it_is_a_folder(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "infer", str(MODEL), str(tmp_path))
    assert code == ExitCode.IMAGE
    assert "is a folder, not an image file" in err and "not found" not in err


def test_camera_index_as_integer(tmp_path: Path) -> None:
    f = tmp_path / "a.toml"
    f.write_text("[camera]\nsource = 0\n")
    assert load_config(f, environ={}).camera.source == "0"
    assert load_config(None, environ={"EDGE_AGENT_CAMERA__SOURCE": "3"}).camera.source == "3"
    f.write_text("[camera]\nsource = -1\n")
    with pytest.raises(ConfigError, match=r"camera\.source"):
        load_config(f, environ={})


def test_bench_on_an_undecodable_image(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notimage.jpg"
    bad.write_text("not an image")
    code, _, err = _run(capsys, "bench", str(MODEL), "--source", str(bad), "--frames", "10")
    assert code == ExitCode.SOURCE
    assert "not a decodable image" in err and "skipped" not in err


def test_serial_error_names_the_cause_once(tmp_path: Path) -> None:
    missing = tmp_path / "ttyNOPE"
    with pytest.raises(BridgePortError) as exc:
        open_port(str(missing), 115200)
    msg = str(exc.value)
    assert msg.count(str(missing)) == 1 and "Errno" not in msg and "no such device" in msg
    with pytest.raises(BridgePortError, match="not a serial device"):
        open_port(str(MODEL), 115200)


def test_fleet_params_are_strings_unless_json() -> None:
    assert parse_params(["version=2.0", "id=007", "x=a=b"]) == {
        "version": "2.0", "id": "007", "x": "a=b"}
    assert parse_params(["t:=0.5", "on:=true", "pins:=[1,2]", "n:=null"]) == {
        "t": 0.5, "on": True, "pins": [1, 2], "n": None}
    for bad in ("novalue", "=x", "t:=0.5.1"):
        with pytest.raises(ConfigError, match="parameter"):
            parse_params([bad])


def test_status_shows_no_python_none() -> None:
    text = render({"camera": {"source": "0", "last_error": None, "ok": True}, "fps": {}},
                  running=True)
    assert "None" not in text and "True" not in text
    assert "last_error=-" in text and "ok=yes" in text


def test_backend_bogus_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.inference.backend import BACKEND_NAMES

    code, _, err = _run(capsys, "infer", str(MODEL), "x.jpg", "--backend", "bogus")
    assert code == 2 and "auto" in err and all(n in err for n in BACKEND_NAMES)


def test_models_activate_unknown_version_lists_what_is_installed(
        agent_toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "activate", "9.9", "-c", str(agent_toml), "--json")
    err = json.loads(out)
    assert code == ExitCode.STORE and err["error"] == "store"
    assert "any model" not in err["message"] and "nothing is installed yet" in err["message"]


def test_models_activate_refused_while_the_agent_runs(
        tmp_path: Path, agent_toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.updates.store import Store

    cfg = load_config(agent_toml, environ={})
    store = Store.for_config(cfg)
    srv = ControlServer(persist_every_s=0)
    srv.start(SimpleNamespace(config=cfg, pipeline=None, mqtt=None))
    try:
        before = store.load()
        code, _, err = _run(capsys, "models", "activate", "1.0", "-c", str(agent_toml))
        assert code == ExitCode.UPDATE_BUSY and "the agent is running" in err
        assert "systemctl stop edge-agent" in err and store.load() == before
        code, _, err = _run(capsys, "models", "rollback", "-c", str(agent_toml))
        assert code == ExitCode.UPDATE_BUSY and "fleet cmd DEVICE rollback" in err
    finally:
        srv.stop()


def test_metrics_doc_names_the_update_key() -> None:
    src = (ROOT / "edge_agent" / "updates" / "component.py").read_text()
    assert 'snapshot["update"]' in src
    doc = (ROOT / "docs" / "metrics.md").read_text()
    assert "`update` (#5" in doc and "`updates` (#5)" not in doc


@pytest.fixture
def http_404() -> Iterator[str]:
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/registry"
    srv.shutdown()
    srv.server_close()


def test_doctor_registry_404_fails_and_demo_source_passes(http_404: str) -> None:
    from edge_agent.tools import doctor

    cfg = parse_config({"updates": {"registry": http_404}, "camera": {"source": "demo"}})
    reg = doctor.check_registry(cfg)
    assert reg.status == doctor.FAIL and "HTTP 404" in reg.detail
    cam = doctor.check_camera(cfg)
    assert cam.status == doctor.PASS, cam


def test_logs_from_the_running_agent(agent_toml: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from edge_agent.cli.logs_cmd import new_lines
    from edge_agent.ops.logging_setup import RECENT

    for i in range(3):
        RECENT.handle(logging.LogRecord("edge_agent.t", logging.INFO, __file__, 1,
                                        f"line {i} of the logs test", None, None))
    cfg = load_config(agent_toml, environ={})
    code, out, _ = _run(capsys, "logs", "-c", str(agent_toml), "--json")
    assert code == ExitCode.AGENT_NOT_RUNNING and json.loads(out)["error"] == "agent_not_running"
    srv = ControlServer(persist_every_s=0)
    srv.start(SimpleNamespace(config=cfg, pipeline=None, mqtt=None))
    try:
        code, out, _ = _run(capsys, "logs", "-n", "2", "-c", str(agent_toml), "--json")
    finally:
        srv.stop()
    lines = json.loads(out)["lines"]
    assert code == 0 and len(lines) == 2 and "line 2 of the logs test" in lines[0]
    assert new_lines(["a", "b"], ["a", "b", "c", "d"]) == ["c", "d"]
    assert new_lines(["a", "b"], ["x", "y"]) == ["x", "y"]  # the window moved past them
    assert new_lines([], ["x"]) == ["x"] and new_lines(["b"], ["a", "b"]) == []
