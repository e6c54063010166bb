"""`edge-agent diag bundle`: the expected members, and no secret from the config anywhere."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from tests.support.helpers import run_cli
from tests.support.ops import free_port

PASSWORD = "hunter2-very-secret"


def _members(bundle: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(bundle) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name.split("/", 1)[1]] = f.read()
    return out


def test_bundle_has_no_secret(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "device-private-key.pem"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "cam7"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nenabled = true\nport = {free_port()}\nusername = "cam7"\n'
        f'password = "{PASSWORD}"\n'
        f'[mqtt.tls]\nca = "{tmp_path / "ca.pem"}"\nkey = "{key}"\n'
    )
    out = tmp_path / "diag.tar.gz"
    r = run_cli("diag", "bundle", str(out), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    members = _members(out)
    assert {"config.json", "versions.json", "status.json", "metrics.json", "logs.txt",
            "doctor.txt", "doctor.json"} <= set(members)
    conf = json.loads(members["config.json"])
    assert conf["mqtt"]["password"] == "***" and conf["mqtt"]["tls"]["key"] == "***"
    assert conf["mqtt"]["username"] == "cam7"  # not a secret, kept
    doctor = json.loads(members["doctor.json"])
    assert any(c["name"] == "broker" and c["status"] == "FAIL" for c in doctor["checks"])
    blob = b"".join(members.values())
    for secret in (PASSWORD, str(key), "device-private-key"):
        assert secret.encode() not in blob, secret
    # and the raw archive (names, headers) too
    import gzip

    raw = gzip.decompress(out.read_bytes())
    assert PASSWORD.encode() not in raw and str(key).encode() not in raw


def test_bundle_with_invalid_config_still_written(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[mqtt]\npassword = "{PASSWORD}"\nbogus = 1\n')
    out = tmp_path / "d.tar.gz"
    r = run_cli("diag", "bundle", str(out), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    members = _members(out)
    assert "mqtt.bogus" in members["config_error.txt"].decode()
    assert PASSWORD.encode() not in b"".join(members.values())


def test_unwritable_output_is_one_line_error(tmp_path: Path) -> None:
    r = run_cli("diag", "bundle", "/proc/nope/diag.tar.gz")
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
