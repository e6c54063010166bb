"""Start/stop the MQTT test agent process (tests/support/mqtt_harness.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.helpers import ROOT, cli_env

HARNESS = Path(__file__).with_name("mqtt_harness.py")


def write_config(path: Path, state_dir: Path, port: int, **mqtt: Any) -> Path:
    """A TOML config for the harness: device dev1 in group lab, metrics every 0.2 s."""
    device_id = mqtt.pop("device_id", "dev1")
    interval = mqtt.pop("interval_s", 0.2)
    tls = mqtt.pop("tls", None)
    lines = [
        "[device]",
        f'id = "{device_id}"',
        'groups = ["lab"]',
        f'state_dir = "{state_dir}"',
        "[camera]",  # used by the real agent only (the harness has no camera)
        'source = "synthetic"',
        "fps = 5",
        "[metrics]",
        f"interval_s = {interval}",
        "[mqtt]",
        "enabled = true",
        'host = "127.0.0.1"',
        f"port = {port}",
    ]
    for k, v in mqtt.items():
        lines.append(f"{k} = {_toml(v)}")
    if tls:
        lines.append("[mqtt.tls]")
        lines += [f"{k} = {_toml(v)}" for k, v in tls.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgentProc:
    """An agent child process; ``kill()`` is SIGKILL, ``stop()`` SIGTERM.

    ``real=True``: the real ``python -m edge_agent run --config FILE`` (synthetic camera,
    shipped model). Otherwise the MQTT test harness (harness.py), which also publishes
    events and can serve ``snapshot`` (``--snapshot``).
    """

    def __init__(self, config: Path, *extra: str, real: bool = False) -> None:
        self.log = config.with_suffix(".log")
        logf = self.log.open("ab")
        if real:
            cmd = [sys.executable, "-m", "edge_agent", "run", "--config", str(config), *extra]
        else:
            cmd = [sys.executable, str(HARNESS), str(config), *extra]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL if real else subprocess.PIPE,
            stderr=logf,
            env=cli_env(),
            cwd=ROOT,
            text=True,
        )
        logf.close()
        if real:
            return  # the tests wait for its status/metrics on the broker
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "READY" not in line:
            self.kill()
            raise RuntimeError(f"harness did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)
