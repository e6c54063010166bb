"""The systemd unit verifies, scores <= 3.0 exposure, and ships a config that validates."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import ROOT, run_cli

UNIT = ROOT / "systemd" / "edge-agent.service"
analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze not installed")


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    exe = shutil.which("edge-agent") or sys.executable
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent/bin/edge-agent", exe))
    return unit


@needs_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    assert analyze is not None
    r = subprocess.run(
        [analyze, "verify", str(_installed_copy(tmp_path))], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@needs_analyze
def test_security_exposure_at_most_3(tmp_path: Path) -> None:
    assert analyze is not None
    r = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(_installed_copy(tmp_path))],
        capture_output=True,
        text=True,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    print(f"systemd-analyze security exposure: {m.group(1)}")
    assert float(m.group(1)) <= 3.0


def test_unit_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "Restart=always",
        "SupplementaryGroups=video dialout",
        "StateDirectory=edge-agent",
        "ConfigurationDirectory=edge-agent",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text, line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert re.search(r"^StartLimitBurst=(\d+)", text, re.M)
    # the start limit leaves room for the update rollback's attempts (at most 10) + 1
    burst = int(re.search(r"^StartLimitBurst=(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    assert burst > 10 + 1


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="no systemd-sysusers/systemd-tmpfiles",
)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: systemd-tmpfiles chowns the folders "
                    "to the edge-agent user (CI runs as root)")
def test_sysusers_and_tmpfiles_apply_in_a_root(tmp_path: Path) -> None:
    """Apply both files to a scratch root: the user, its groups and the folders appear."""
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", tmp_path / "etc" / name)
    for kind in ("sysusers", "tmpfiles"):
        d = tmp_path / "usr" / "lib" / f"{kind}.d"
        d.mkdir(parents=True)
        shutil.copy(ROOT / "systemd" / f"edge-agent.{kind}.conf", d / "edge-agent.conf")
    for tool in ("systemd-sysusers", "systemd-tmpfiles --create"):
        r = subprocess.run(
            [*tool.split(), f"--root={tmp_path}", "edge-agent.conf"], capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^edge-agent:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)
    groups = (tmp_path / "etc" / "group").read_text()
    assert re.search(r"^video:.*edge-agent", groups, re.M)
    assert re.search(r"^dialout:.*edge-agent", groups, re.M)
    state = tmp_path / "var" / "lib" / "edge-agent"
    assert state.is_dir() and (state.stat().st_mode & 0o777) == 0o750


def test_example_config_validates() -> None:
    r = run_cli("config", "validate", str(ROOT / "systemd" / "agent.example.toml"))
    assert r.returncode == 0, r.stderr


@needs_analyze
def test_fleet_serve_unit_verifies_and_scores_low(tmp_path: Path) -> None:
    assert analyze is not None
    exe = shutil.which("edge-agent") or sys.executable
    unit = tmp_path / "edge-fleet.service"
    unit.write_text((ROOT / "systemd" / "edge-fleet.service").read_text()
                    .replace("/opt/edge-agent/bin/edge-agent", exe))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    r = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m and float(m.group(1)) <= 3.0, r.stdout
