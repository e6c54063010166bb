from pathlib import Path

import pytest

from edge_agent import __version__
from tests.support.helpers import run_cli


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"edge-agent {__version__}"


def test_config_validate_bad_key_exits_2_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "a.toml"
    f.write_text("[mqtt]\nhots = 'x'\n")
    r = run_cli("config", "validate", str(f))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "mqtt.hots" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("prefix", "why"),
    [("edge/+/dev1", "contains the MQTT wildcard +"), ("edge/#", "contains the MQTT wildcard #"),
     ("edge//dev1", "empty level"), ("edge/dev1/", "empty level"),
     ("edge/\\u0000x", "control character U+0000"), ("$SYS/x", "starts with $")],
)
def test_config_validate_refuses_a_prefix_that_is_not_a_plain_topic(
    tmp_path: Path, prefix: str, why: str
) -> None:
    """Refused by `config validate` (exit 2, one line: file, line, key), not later by `run`."""
    f = tmp_path / "a.toml"
    f.write_text(f'[device]\nid = "dev1"\n[mqtt]\nenabled = true\nprefix = "{prefix}"\n')
    r = run_cli("config", "validate", str(f))
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {f}:5: mqtt.prefix: ") and why in r.stderr, r.stderr


def test_config_validate_refuses_a_group_prefix_with_a_wildcard(tmp_path: Path) -> None:
    f = tmp_path / "a.toml"
    f.write_text('[mqtt]\ngroup_prefix = "edge/group/#"\n')
    r = run_cli("config", "validate", str(f))
    assert r.returncode == 2 and f"{f}:2: mqtt.group_prefix" in r.stderr


def test_config_validate_warns_about_a_plain_password(tmp_path: Path) -> None:
    f = tmp_path / "a.toml"
    f.write_text('[mqtt]\nusername = "dev1"\npassword = "hunter2"\n')
    r = run_cli("config", "validate", str(f))
    assert r.returncode == 0 and r.stdout == f"{f}: OK\n"
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"warning: {f}:3: mqtt.password ")
    assert "mqtt.password_file" in r.stderr and "hunter2" not in r.stderr


def test_fleet_cmd_bad_expires_is_one_line_before_connecting() -> None:
    r = run_cli("fleet", "cmd", "dev1", "ping", "--expires", "tomorrow", "--broker", "127.0.0.1:1")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: --expires 'tomorrow': expected seconds (0 < S <= 2592000) or never")
