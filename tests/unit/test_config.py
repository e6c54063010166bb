from pathlib import Path

import pytest

from edge_agent.config import load_config, parse_config, redacted
from edge_agent.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = parse_config({})
    assert cfg.model.threads == 1
    assert cfg.camera.source == "synthetic"
    assert cfg.mqtt_prefix == f"edge/{cfg.device.id}"


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text('[device]\nid = "cam1"\n\n[camera]\nsorce = "0"\n')
    with pytest.raises(ConfigError) as e:
        load_config(f, environ={})
    assert f"{f}:5: camera.sorce: unknown key" in str(e.value)


def test_wrong_type(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text("[model]\nthreads = 'many'\n")
    with pytest.raises(ConfigError, match=r"agent.toml:2: model.threads"):
        load_config(f, environ={})


def test_env_overrides_and_relative_paths(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text('[model]\npath = "m.tflite"\n')
    cfg = load_config(
        f, environ={"EDGE_AGENT_MODEL__THREADS": "3", "EDGE_AGENT_MQTT__HOST": "b.local"}
    )
    assert cfg.model.threads == 3
    assert cfg.mqtt.host == "b.local"
    assert cfg.model.path == tmp_path / "m.tflite"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_redacted_hides_secrets() -> None:
    cfg = parse_config(
        {"mqtt": {"password": "hunter2", "tls": {"key": "/etc/k.pem", "ca": "/etc/ca.pem"}}}
    )
    text = str(redacted(cfg))
    assert "hunter2" not in text and "/etc/k.pem" not in text
    assert "/etc/ca.pem" in text


def test_plain_password_in_the_file_is_a_warning_env_is_not(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text('[mqtt]\nusername = "u"\n\npassword = "s3cret"\n')
    cfg = load_config(f, environ={})
    assert cfg.mqtt.password is not None  # it still works
    [warning] = cfg.warnings
    assert warning.startswith(f"{f}:4: mqtt.password is written in the config file")
    assert "mqtt.password_file" in warning and "s3cret" not in warning
    f.write_text('[mqtt]\nusername = "u"\n')
    assert load_config(f, environ={"EDGE_AGENT_MQTT__PASSWORD": "s3cret"}).warnings == []
    (tmp_path / "pw").write_text("s3cret\n")
    f.write_text('[mqtt]\npassword_file = "pw"\n')
    assert load_config(f, environ={}).warnings == []


@pytest.mark.parametrize("prefix", ["edge/+", "edge/#/x", "/edge", "edge\x00"])
def test_prefix_from_the_environment_is_checked_too(prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.prefix"):
        parse_config({}, environ={"EDGE_AGENT_MQTT__PREFIX": prefix})
    assert parse_config({"mqtt": {"prefix": "site-3/line.2/cam_1"}}).mqtt_prefix == (
        "site-3/line.2/cam_1")


def test_pipeline_schedule_is_auto_or_forced(tmp_path: Path) -> None:
    assert parse_config({}).pipeline.schedule == "auto"
    assert parse_config({"pipeline": {"schedule": "serial"}}).pipeline.schedule == "serial"
    p = tmp_path / "agent.toml"
    p.write_text('[pipeline]\nschedule = "fast"\n')
    with pytest.raises(ConfigError, match=r"agent.toml:2: pipeline.schedule"):
        load_config(p, environ={})
