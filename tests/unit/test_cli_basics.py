from edge_agent import __version__
from tests.helpers import run_cli


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
