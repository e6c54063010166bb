"""``edge-agent doctor``: every check a technician would do by hand, each with a one-line fix.

Each check returns a :class:`Check` (``PASS`` / ``WARN`` / ``FAIL`` / ``SKIP`` when the feature
is off) and never raises: an unexpected error in a check is itself a ``FAIL`` naming it. Order:
config -> model sha256 -> model store state -> backend and delegates -> camera -> broker ->
registry -> clock -> disk -> serial bridge -> the systemd unit. If the config does not load, the
rest is skipped (they all read it).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..errors import BackendError, EdgeAgentError
from ..resources import models_dir
from . import probes

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
# A device clock before this is certainly wrong (TLS and signature expiry checks would fail).
CLOCK_FLOOR = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, 0))
CLOCK_CEILING = time.mktime((2100, 1, 1, 0, 0, 0, 0, 0, 0))


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


CheckFn = Callable[[Config], Check]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def readme_sha256(model: Path) -> tuple[str | None, str]:
    """The sha256 ``models/README.md`` lists for a shipped model file."""
    try:
        readme = models_dir() / "README.md"
        text = readme.read_text(encoding="utf-8")
    except (OSError, EdgeAgentError):
        return None, ""
    name = re.compile(rf"(?<![\w.-]){re.escape(model.name)}(?![\w.-])")
    for line in text.splitlines():
        if name.search(line):
            m = re.search(r"\b[0-9a-f]{64}\b", line)
            if m:
                return m.group(0), str(readme)
    return None, ""


def check_config(path: Path | None) -> tuple[Check, Config | None]:
    try:
        cfg = load_config(path)
    except EdgeAgentError as exc:
        fix = (
            "give the right --config (or $EDGE_AGENT_CONFIG); start from systemd/agent.example.toml"
            if "not found" in str(exc)
            else "fix the key named above; see `edge-agent config schema`"
        )
        return Check("config", FAIL, str(exc), fix), None
    return Check("config", PASS, f"{path or '<defaults>'} is valid"), cfg


def check_model(cfg: Config) -> Check:
    try:
        model, ref, where = probes.boot_model(cfg)
    except EdgeAgentError as exc:
        return Check("model", FAIL, str(exc), "reinstall edge-agent or set model.path")
    if not model.is_file():
        return Check(
            "model", FAIL, f"model file missing: {model}",
            "restore the file, fix model.path, or `edge-agent models rollback`",
        )
    if ref is None:
        ref, where = readme_sha256(model)
    actual = sha256_of(model)
    if ref is None:
        return Check(
            "model", WARN, f"{model.name}: sha256 {actual[:12]}, no reference to verify against",
            "install models through the registry (signed manifests carry the sha256)",
        )
    if actual != ref:
        return Check(
            "model", FAIL,
            f"{model}: sha256 mismatch (expected {ref[:12]} from {where}, got {actual[:12]})",
            "the file is corrupt or was replaced: `edge-agent models rollback` or reinstall it",
        )
    return Check("model", PASS, f"{model.name}: sha256 {actual[:12]} matches {where}")


STORE_FIX = (
    "check the storage (dmesg, SMART); the damaged file is kept beside it as "
    "state.json.damaged-*; the note clears when the next update commits"
)


def check_store(cfg: Config) -> Check:
    """The model store's state.json: whole, damaged now, or recovered from damage earlier."""
    from ..updates.store import Store

    store = Store.for_config(cfg)
    try:
        s, problem = store.inspect()  # read-only
    except (EdgeAgentError, OSError) as exc:
        return Check("store", FAIL, str(exc), "fix or remove what is named above")
    note = s.recovered
    if problem is not None and note is not None:
        kept = f"active {s.active.label}" if s.active else "the factory model"
        return Check(
            "store", WARN,
            f"{problem}; the agent recovers from {note.source} ({kept}, highest seq "
            f"{s.highest_seq or '{}'}) when it next reads it", STORE_FIX,
        )
    if note is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(note.at))
        return Check(
            "store", WARN,
            f"recovered from {note.source} at {when} after: {note.problem}", STORE_FIX,
        )
    if not store.state_path.exists():
        return Check("store", PASS, "no model store yet (the factory model runs)")
    active = s.active.label if s.active else "none (factory model)"
    return Check("store", PASS, f"{store.state_path.name} whole; active {active}")


def check_backend(cfg: Config) -> Check:
    try:
        detail, failed = probes.backend_and_delegates(cfg)
    except BackendError as exc:
        return Check("backend", FAIL, str(exc), "pip install ai-edge-litert (or the legacy extra)")
    except EdgeAgentError as exc:
        return Check(
            "backend", FAIL, str(exc), "the model does not load: reinstall it or roll back"
        )
    if failed:
        return Check(
            "backend", FAIL, f"{detail}; delegate failed: {failed}",
            "install the delegate library (and its driver) or remove it from [[model.delegates]]",
        )
    return Check("backend", PASS, detail)


def _probe(
    name: str,
    probe: Callable[[Config], str],
    cfg: Config,
    fixes: tuple[tuple[type[EdgeAgentError], str], ...],
) -> Check:
    """Run one I/O probe: PASS with its detail, or FAIL with the fix of the first matching type."""
    try:
        return Check(name, PASS, probe(cfg))
    except EdgeAgentError as exc:
        fix = next((f for kind, f in fixes if isinstance(exc, kind)), "")
        return Check(name, FAIL, str(exc), fix)


def running_camera(cfg: Config) -> dict[str, Any] | None:
    """The running agent's camera stats (through its control socket), or None without one."""
    from ..ops.control import request

    try:
        camera = request(cfg.control_socket, "status", timeout=3.0).get("camera")
    except EdgeAgentError:
        return None
    return camera if isinstance(camera, dict) and camera.get("health") else None


def check_camera(cfg: Config) -> Check:
    """The running agent's view when there is one (it holds the camera, a second open would
    find it busy); else open the source and read a frame."""
    fix = "plug the camera in / check camera.source and that the user is in group video"
    camera = running_camera(cfg)
    if camera is None:
        return _probe("camera", probes.camera_frame, cfg, ((EdgeAgentError, fix),))
    health, source = camera.get("health"), camera.get("source") or cfg.camera.source
    res = camera.get("resolution")
    size = f" {res[0]}x{res[1]}" if isinstance(res, list) and len(res) == 2 else ""
    if health == "ok":
        return Check("camera", PASS, f"{source}: the running agent reads it ({camera.get('frames')}"
                     f" frames{size})")
    if health in ("reconnecting", "failed", "starting"):
        why = camera.get("last_error") or "not open yet"
        return Check(
            "camera", FAIL,
            f"{source}: the running agent is waiting for it ({health}: {why})",
            fix + "; the agent picks it up by itself once it answers",
        )
    return Check("camera", WARN, f"{source}: the running agent's camera is {health}")


def check_broker(cfg: Config) -> Check:
    if not cfg.mqtt.enabled:
        return Check("broker", SKIP, "mqtt.enabled = false")
    fixes = (
        (probes.BrokerAuthError, "check mqtt.username and the password (file)"),
        (probes.BrokerTLSError, "check mqtt.tls.ca/cert/key and the device clock"),
        (EdgeAgentError, "start the broker or fix mqtt.host/mqtt.port; check network, firewall"),
    )
    return _probe("broker", probes.broker, cfg, fixes)


def check_registry(cfg: Config) -> Check:
    if not cfg.updates.registry:
        return Check("registry", SKIP, "updates.registry not set")
    fix = "fix updates.registry (and updates.ca for https); check network and DNS"
    return _probe("registry", probes.registry, cfg, ((EdgeAgentError, fix),))


def check_clock(cfg: Config, now: float | None = None) -> Check:
    t = time.time() if now is None else now
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    if not CLOCK_FLOOR <= t < CLOCK_CEILING:
        return Check(
            "clock", FAIL, f"system time {shown} is not plausible",
            "enable NTP (timedatectl set-ntp true) or set the RTC; TLS and signatures need it",
        )
    synced = Path("/run/systemd/timesync/synchronized").exists()
    return Check("clock", PASS, f"{shown}" + (" (NTP synchronized)" if synced else ""))


def check_disk(cfg: Config) -> Check:
    target = cfg.device.state_dir
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    try:
        size = probes.boot_model(cfg)[0].stat().st_size
    except (OSError, EdgeAgentError):
        size = 0
    need = 2 * size
    mib = 1024 * 1024
    if free < need:
        return Check(
            "disk", FAIL,
            f"{target}: {free / mib:.1f} MiB free, two model versions need {need / mib:.1f} MiB",
            "free space on that filesystem or lower updates.keep_versions",
        )
    if free < 2 * cfg.updates.max_file_bytes:
        return Check(
            "disk", WARN,
            f"{target}: {free / mib:.1f} MiB free; a maximal update "
            f"({cfg.updates.max_file_bytes / mib:.0f} MiB) would not fit twice",
            "free space or lower updates.max_file_bytes",
        )
    return Check("disk", PASS, f"{target}: {free / mib:.0f} MiB free")


def check_serial(cfg: Config) -> Check:
    if not cfg.bridge.enabled:
        return Check("serial", SKIP, "bridge.enabled = false")
    fix = "plug the board in / fix bridge.port and baudrate; user must be in group dialout"
    return _probe("serial", probes.serial_hello, cfg, ((EdgeAgentError, fix),))


def check_service(cfg: Config) -> Check:
    """The systemd unit's state where systemd runs (installed, active, enabled, restarts)."""
    from . import service

    if not service.systemd_running():
        return Check("service", SKIP, "systemd is not running here (a container or chroot)")
    status, detail, fix = service.judge(service.unit_properties())
    return Check("service", status, detail, fix)


CHECKS: tuple[CheckFn, ...] = (
    check_model,
    check_store,
    check_backend,
    check_camera,
    check_broker,
    check_registry,
    check_clock,
    check_disk,
    check_serial,
    check_service,
)


def run(config_path: Path | None) -> list[Check]:
    first, cfg = check_config(config_path)
    results = [first]
    for fn in CHECKS:
        name = fn.__name__.removeprefix("check_")
        if cfg is None:
            results.append(Check(name, SKIP, "config invalid"))
            continue
        try:
            results.append(fn(cfg))
        except Exception as exc:  # a broken check is reported, never crashes the doctor
            results.append(Check(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}",
                                 "report this with `edge-agent diag bundle`"))
    return results


def failed(results: list[Check]) -> bool:
    return any(c.status == FAIL for c in results)


def to_json(results: list[Check]) -> dict[str, Any]:
    return {"ok": not failed(results), "checks": [c.to_json() for c in results]}


def render(results: list[Check]) -> str:
    width = max(len(c.name) for c in results)
    lines = []
    for c in results:
        lines.append(f"{c.status:4}  {c.name:{width}}  {c.detail}")
        if c.fix and c.status in (FAIL, WARN):
            lines.append(f"{'':4}  {'':{width}}  fix: {c.fix}")
    return "\n".join(lines)
