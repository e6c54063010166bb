"""Logging: human and JSON lines, journald detection, secrets never printed."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.ops import logging_setup
from edge_agent.ops.logging_setup import configure, under_journald


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logging_setup.REDACT.set_secrets([])


def _emit(stream: io.StringIO | object, msg: str, *args: object) -> None:
    logging.getLogger("edge_agent.test").warning(msg, *args)


def test_human_has_timestamp_level_logger() -> None:
    buf = io.StringIO()
    configure("human", "INFO", stream=buf, environ={})
    _emit(buf, "hello %s", "world")
    line = buf.getvalue().strip()
    assert line.endswith("WARNING edge_agent.test: hello world")
    assert line[:4].isdigit()  # a timestamp first


def test_json_lines() -> None:
    buf = io.StringIO()
    configure("json", "DEBUG", stream=buf, environ={})
    logging.getLogger("edge_agent.x").debug("n=%d", 3)
    obj = json.loads(buf.getvalue())
    assert obj["level"] == "DEBUG" and obj["logger"] == "edge_agent.x" and obj["msg"] == "n=3"
    assert obj["ts"].endswith("Z")


def test_level_filters() -> None:
    buf = io.StringIO()
    configure("human", "ERROR", stream=buf, environ={})
    logging.getLogger("edge_agent.x").warning("hidden")
    assert buf.getvalue() == ""


def test_journald_drops_timestamp_and_prefixes_priority(tmp_path: Path) -> None:
    f = (tmp_path / "stream").open("w+")
    st = os.fstat(f.fileno())
    env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    assert under_journald(f, env)
    configure("human", "INFO", stream=f, environ=env)
    logging.getLogger("edge_agent.j").error("boom")
    configure("json", "INFO", stream=f, environ=env)
    logging.getLogger("edge_agent.j").info("json")
    f.flush()
    f.seek(0)
    human, js = f.read().splitlines()
    assert human == "<3>ERROR edge_agent.j: boom"
    assert "ts" not in json.loads(js)
    f.close()


def test_journal_stream_of_another_file_is_ignored(tmp_path: Path) -> None:
    f = (tmp_path / "stream").open("w")
    assert not under_journald(f, {"JOURNAL_STREAM": "1:2"})
    assert not under_journald(f, {"JOURNAL_STREAM": "garbage"})
    f.close()


def test_secrets_never_reach_output(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text("file-secret-123\n")
    cfg = parse_config({"mqtt": {"password_file": str(pw_file)}})
    buf = io.StringIO()
    logging_setup.configure("json", "INFO", stream=buf, environ={})
    logging_setup.REDACT.set_secrets(logging_setup.secrets_of(cfg))
    log = logging.getLogger("edge_agent.s")
    log.warning("connect with %s failed", "file-secret-123")
    try:
        raise RuntimeError("bad password file-secret-123")
    except RuntimeError:
        log.exception("oops")
    out = buf.getvalue()
    assert "file-secret-123" not in out
    assert out.count("***") >= 2
    assert all("file-secret-123" not in x for x in logging_setup.RECENT.lines())


def test_bad_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure("xml", "INFO")
    with pytest.raises(ValueError, match="log level"):
        configure("json", "LOUD")
