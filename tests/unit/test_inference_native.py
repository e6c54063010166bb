"""The runtime's fd-2 chatter is captured while models load; other output is not lost."""

from __future__ import annotations

import logging
import os

import pytest

from edge_agent.inference.native import quiet_native_stderr


def test_runtime_lines_are_logged_and_others_written_back(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="edge_agent.inference")
    with quiet_native_stderr() as native:
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"WARNING: something the runtime wants said\n")
        os.write(2, b"another thread's line\n")
    err = capfd.readouterr().err
    assert err == "another thread's line\n"
    assert native.lines[0].startswith("INFO: Created")
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert (
        levels["runtime: INFO: Created TensorFlow Lite XNNPACK delegate for CPU."] == logging.DEBUG
    )
    assert levels["runtime: WARNING: something the runtime wants said"] == logging.WARNING


def test_on_error_the_text_stays_with_the_caller(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="edge_agent.inference")
    with pytest.raises(ValueError), quiet_native_stderr() as native:
        os.write(2, b"ERROR: Encountered unresolved custom op: Foo.\n")
        raise ValueError("boom")
    assert capfd.readouterr().err == ""
    assert "unresolved custom op: Foo" in native.text()
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
