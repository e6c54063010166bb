"""Commands that outlive their sender: `fleet cmd` / `push-update` to a device that is away.

The broker keeps the device's persistent session and delivers the queued commands when it
comes back; by then the sender gave up, so the commands carry ``expires_at`` and the device
replies ``expired`` without running them. ``--expires never`` opts out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge_agent.errors import ExitCode
from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.helpers import ROOT, cli_env
from tests.support.mqtt_agent import AgentProc, write_config


def _fleet(port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "fleet", *args, "--broker", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)


def _replies(rec: Recorder) -> dict[str, dict[str, Any]]:
    out = {}
    for m in rec.messages:
        if m.topic.startswith("fleet/"):
            body = json.loads(m.payload)
            out[body["id"]] = body
    return out


def test_commands_sent_while_the_device_is_away_expire(tmp_path: Path,
                                                       mosquitto: Mosquitto) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", mosquitto.port, interval_s=0.5)
    agent = AgentProc(cfg, real=True)
    rec = Recorder(mosquitto.port, ["edge/dev1/status", "edge/dev1/metrics", "fleet/#",
                                    "edge/dev1/snapshot", "edge/dev1/update"], client_id="ops")
    try:
        assert rec.wait(lambda r: any(s["online"] for s in r.on("edge/dev1/status")), timeout=30)
        agent.kill()  # the device is away; its session (and command subscription) stays
        assert rec.wait(lambda r: r.on("edge/dev1/status")[-1]["online"] is False)
        senders = {
            "snapshot": _fleet(mosquitto.port, "cmd", "dev1", "snapshot", "--timeout", "2",
                               "--id", "snap-late"),
            "ping": _fleet(mosquitto.port, "cmd", "dev1", "ping", "--timeout", "2",
                           "--id", "ping-never", "--expires", "never"),
            "update": _fleet(mosquitto.port, "push-update", "dev1", "--model", "blazeface",
                             "--version", "9", "--deployment", "dep-late"),
        }
        for name, proc in senders.items():
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == ExitCode.COMMAND_TIMEOUT, (name, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "no reply to edge/dev1/cmd/" in lines[0], (name, err)
            if name == "ping":
                assert "it has no expires_at: the device runs it whenever it comes back" in err
            else:
                assert "it has expired: a device that gets it now replies expired" in err
        time.sleep(0.5)
        agent = AgentProc(cfg, real=True)  # back, after every default expiry
        assert rec.wait(lambda r: {"snap-late", "ping-never", "dep-late"} <= set(_replies(r)),
                        timeout=30), _replies(rec)
        replies = _replies(rec)
        for rid, command in [("snap-late", "snapshot"), ("dep-late", "update")]:
            r = replies[rid]
            assert r["ok"] is False and r["command"] == command, r
            assert r["error"]["code"] == "expired" and "not run" in r["error"]["message"], r
        assert replies["ping-never"]["ok"] is True  # --expires never: run when it came back
        # not run: no snapshot JPEG, no update record; counted in the device's metrics
        assert not any(m.topic in ("edge/dev1/snapshot", "edge/dev1/update")
                       for m in rec.messages)
        assert rec.wait(lambda r: any(m.get("mqtt", {}).get("commands_expired") == 2
                                      for m in r.on("edge/dev1/metrics")), timeout=20)
        assert "Traceback" not in agent.log.read_text()
    finally:
        rec.close()
        agent.kill()
