"""``edge-agent diag bundle``: one tar.gz a technician sends to support, with no secret in it.

Members: ``config.json`` (effective config, secrets redacted), ``versions.json``, ``status.json``
(live from the control socket, else the last persisted one), ``metrics.json`` (last snapshot),
``store/`` (model store state and version folders), ``logs.txt`` (the running agent's recent
lines, else the journal), ``doctor.txt`` / ``doctor.json``.

Every member passes through :class:`Scrubber`, which removes the config's secret values (broker
password, password file content) and secret paths (TLS private key, password file) wherever
they appear, e.g. in an error message or a log line.
"""

from __future__ import annotations

import io
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..common.atomicfile import atomic_write_bytes
from ..config import Config, load_config, redacted
from ..errors import EdgeAgentError
from ..ops.control import read_persisted, request
from ..ops.logging_setup import secrets_of
from . import doctor

PACKAGES = (
    "ai-edge-litert",
    "tflite-runtime",
    "numpy",
    "opencv-python-headless",
    "paho-mqtt",
    "pyserial",
    "pydantic",
    "typer",
    "cryptography",
    "psutil",
)
MAX_STORE_FILE = 1024 * 1024  # state/manifest files copied into the bundle, each at most this
JOURNAL_LINES = 2000


class Scrubber:
    """Replaces each secret string by ``***`` (longest first)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text


def secret_strings(cfg: Config) -> list[str]:
    """Secret values and the paths of secret files that a bundle must not show."""
    out = secrets_of(cfg)
    if cfg.mqtt.password_file is not None:
        out.append(str(cfg.mqtt.password_file))
    if cfg.mqtt.tls is not None and cfg.mqtt.tls.key is not None:
        out.append(str(cfg.mqtt.tls.key))
    return out


def versions() -> dict[str, Any]:
    pkgs = {}
    for name in PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "edge_agent": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": pkgs,
    }


def _store_members(state_dir: Path) -> dict[str, bytes]:
    """The model store's small files (state, manifests, descriptions) and a listing."""
    root = state_dir / "models"
    out: dict[str, bytes] = {}
    if not root.is_dir():
        return {"store/README.txt": f"no model store at {root}\n".encode()}
    listing = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root)
        size = p.stat().st_size
        listing.append(f"{size:>12}  {rel}")
        if p.suffix in (".json", ".sig", ".txt") and size <= MAX_STORE_FILE:
            out[f"store/{rel}"] = p.read_bytes()
    out["store/files.txt"] = ("\n".join(listing) + "\n").encode()
    return out


def _logs(cfg: Config, running: bool) -> str:
    if running:
        try:
            reply = request(cfg.control_socket, "logs", lines=1000)
            return "\n".join(str(x) for x in reply.get("lines", [])) + "\n"
        except EdgeAgentError as exc:
            note = f"(running agent did not give its logs: {exc})\n"
        else:  # pragma: no cover - returned above
            note = ""
    else:
        note = "(agent not running)\n"
    journalctl = shutil.which("journalctl")
    if journalctl:
        try:
            r = subprocess.run(
                [journalctl, "-u", "edge-agent", "-n", str(JOURNAL_LINES), "--no-pager", "-q"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            if r.returncode == 0 and r.stdout.strip():
                return note + r.stdout
        except (OSError, subprocess.TimeoutExpired):
            pass
    return note + "(no journal entries for edge-agent)\n"


def collect(config_path: Path | None) -> dict[str, bytes]:
    """Every member of the bundle, already scrubbed."""
    members: dict[str, str | bytes] = {"versions.json": json.dumps(versions(), indent=1)}
    checks = doctor.run(config_path)
    members["doctor.txt"] = doctor.render(checks) + "\n"
    members["doctor.json"] = json.dumps(doctor.to_json(checks), indent=1)
    try:
        cfg = load_config(config_path)
    except EdgeAgentError as exc:
        members["config_error.txt"] = f"{exc}\n"
        return _finish(members, Scrubber([]))
    members["config.json"] = json.dumps(redacted(cfg), indent=1)
    try:
        status = request(cfg.control_socket, "status")
        running = True
    except EdgeAgentError:
        running = False
        try:
            status = read_persisted(cfg.device.state_dir) or {}
        except EdgeAgentError as exc:  # a damaged status.json: say so in the bundle
            status = {"status_error": str(exc)}
    members["status.json"] = json.dumps({"running": running, **status}, indent=1, default=str)
    members["metrics.json"] = json.dumps(status.get("metrics", {}), indent=1, default=str)
    members.update(_store_members(cfg.device.state_dir))
    members["logs.txt"] = _logs(cfg, running)
    return _finish(members, Scrubber(secret_strings(cfg)))


def _finish(members: dict[str, str | bytes], scrub: Scrubber) -> dict[str, bytes]:
    out = {}
    for name, data in members.items():
        text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
        out[name] = scrub(text).encode("utf-8")
    return out


def write_bundle(config_path: Path | None, out: Path) -> list[str]:
    """Write the bundle to ``out`` (atomically); returns the member names."""
    members = collect(config_path)
    prefix = f"edge-agent-diag-{time.strftime('%Y%m%d-%H%M%S')}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o640
            tar.addfile(info, io.BytesIO(data))
    try:
        atomic_write_bytes(out, buf.getvalue(), mode=0o640)
    except OSError as exc:
        raise DiagError(f"{out}: cannot write the bundle: {exc.strerror or exc}") from None
    return sorted(members)


class DiagError(EdgeAgentError):
    """The support bundle cannot be written."""

