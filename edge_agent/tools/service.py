"""The systemd unit's state, for ``doctor``: read with ``systemctl show`` where systemd runs,
judged by a pure function (:func:`judge`) into a status, a detail and what to do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

UNIT = "edge-agent.service"
PROPS = ("LoadState", "ActiveState", "SubState", "UnitFileState", "NRestarts", "Result",
         "ExecMainStatus")


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def unit_properties(unit: str = UNIT, timeout: float = 5.0) -> dict[str, str]:
    """``systemctl show`` of the unit as a dict (empty values for what it does not say)."""
    systemctl = shutil.which("systemctl") or "systemctl"
    out = subprocess.run([systemctl, "show", unit, "--property=" + ",".join(PROPS)],
                         capture_output=True, text=True, timeout=timeout, check=False).stdout
    props = dict.fromkeys(PROPS, "")
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key in props:
            props[key] = value.strip()
    return props


def judge(props: dict[str, str], unit: str = UNIT) -> tuple[str, str, str]:
    """(PASS | WARN | FAIL, detail, fix) for the unit's properties."""
    load, active, sub = props.get("LoadState"), props.get("ActiveState"), props.get("SubState")
    enabled = props.get("UnitFileState") or "?"
    restarts = props.get("NRestarts") or "0"
    logs = f"see `edge-agent logs` / `journalctl -u {unit} -n 50`"
    if load in ("not-found", ""):
        return ("WARN", f"{unit} is not installed",
                "install the service: sudo scripts/install-on-device (docs/operations.md)")
    if load != "loaded":
        return "FAIL", f"{unit} does not load ({load})", f"systemd-analyze verify {unit}; {logs}"
    detail = f"{unit} {active} ({sub}), {enabled}, {restarts} restart(s)"
    if active == "active":
        if restarts not in ("0", ""):
            return "WARN", detail, f"it restarted: {logs}"
        if enabled != "enabled":
            return "WARN", detail, f"it does not start at boot: sudo systemctl enable {unit}"
        return "PASS", detail, ""
    if active == "failed":
        why = props.get("Result") or "?"
        return ("FAIL", f"{detail}; result {why}, exit status {props.get('ExecMainStatus')}",
                f"{logs}; then sudo systemctl restart {unit}")
    if active in ("activating", "reloading") or sub == "auto-restart":
        return "WARN", detail, f"it is (re)starting: {logs}"
    return "WARN", detail, f"start it: sudo systemctl enable --now {unit}"
