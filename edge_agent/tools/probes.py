"""I/O probes behind ``edge-agent doctor``: each does one real thing and raises a typed error.

Model, backend, camera, broker, registry, serial. Every probe has a time limit; messages say
what failed and where (the doctor adds the fix).
"""

from __future__ import annotations

import queue
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..config import Config
from ..errors import EdgeAgentError
from ..resources import shipped_model

T = TypeVar("T")
PROBE_TIMEOUT_S = 8.0


class ProbeError(EdgeAgentError):
    """A doctor probe found a fault (the message names it)."""


class CameraProbeError(ProbeError):
    """The camera does not open or gives no frame."""


class BrokerUnreachable(ProbeError):
    """No MQTT broker answers at host:port."""


class BrokerAuthError(ProbeError):
    """The broker refused the credentials."""


class BrokerTLSError(ProbeError):
    """The TLS handshake with the broker failed."""


class RegistryUnreachable(ProbeError):
    """The model registry does not answer."""


class SerialProbeError(ProbeError):
    """The serial port does not open or the board does not answer hello."""


def bounded(fn: Callable[[], T], timeout: float, what: str, error: type[ProbeError]) -> T:
    """Run ``fn`` on a daemon thread; raise ``error`` if it takes longer than ``timeout``."""
    out: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def target() -> None:
        try:
            out.put((True, fn()))
        except BaseException as exc:
            out.put((False, exc))

    threading.Thread(target=target, name=f"probe-{what}", daemon=True).start()
    try:
        ok, value = out.get(timeout=timeout)
    except queue.Empty:
        raise error(f"{what}: no answer within {timeout:g} s") from None
    if not ok:
        raise value
    result: T = value
    return result


# model ---------------------------------------------------------------------------------------
def boot_model(cfg: Config) -> tuple[Path, str | None, str]:
    """The model file the agent would boot with, its recorded sha256 and where that is from.

    Read-only twin of ``updates.boot.choose_model`` (which consumes a trial attempt, so the
    doctor must not call it): ``model.path``, else the store's trial (attempts left), active
    or previous entry, else the shipped factory model (reference: models/README.md).
    """
    from ..updates.store import Store

    store = Store.for_config(cfg)
    try:
        state = store.inspect()[0]  # read-only: a damaged state.json is recovered in memory
        installed = store.installed()
    except (EdgeAgentError, OSError):
        state, installed = None, []
    if cfg.model.path is not None:
        for e in installed:
            if store.model_path(e) == cfg.model.path:
                return cfg.model.path, e.sha256, f"model store ({e.label})"
        return cfg.model.path, None, ""
    if state is not None:
        trial = state.trial.entry if state.trial and state.trial.attempts_left > 0 else None
        for cand in (trial, state.active, state.previous):
            if cand is not None:
                return store.model_path(cand), cand.sha256, f"model store ({cand.label})"
    return shipped_model(), None, ""


def backend_and_delegates(cfg: Config) -> tuple[str, str]:
    """Load the model with the configured backend and delegate chain, as the agent does.

    Returns (detail, failed delegates): a delegate that does not load or apply makes the agent
    fall back (to the next one, then CPU), which the doctor reports as a failure to fix.
    """
    from ..inference import Model, select_backend

    backend = select_backend(cfg.model.backend)  # BackendError names what to install
    model = boot_model(cfg)[0]
    if not model.is_file():
        return f"{backend.label} importable; {model.name} missing (see the model check)", ""
    loaded = Model(
        model,
        threads=cfg.model.threads,
        delegates=[(d.library, d.options) for d in cfg.model.delegates],
        accelerators=cfg.model.accelerator,
        backend=backend,
    )
    return (
        f"{backend.label} loads {model.name} on {loaded.delegate}",
        "; ".join(loaded.delegate_errors),
    )


# camera --------------------------------------------------------------------------------------
def camera_frame(cfg: Config) -> str:
    """Open the configured source and read one frame."""
    source = cfg.camera.source
    if source == "synthetic":
        return "synthetic source (no camera)"

    def grab() -> str:
        """Open it as the agent does (demo, files, folders, devices, URLs alike)."""
        from ..camera import open_source

        src = open_source(cfg.camera)
        try:
            try:
                src.open()
                frame = src.read()
            except EdgeAgentError as exc:
                raise CameraProbeError(str(exc)) from None
            if frame is None:
                raise CameraProbeError(f"camera {source!r} opens but gives no frame")
            h, w = frame.shape[:2]
            return f"{source}: one frame {w}x{h}"
        finally:
            src.close()

    from ..inference.native import NativeLog, quiet_native_stderr
    from ..ops.stderr_relay import native_why

    native = NativeLog()
    try:
        # every line printed meanwhile is native (FFmpeg, OpenCV): debug log, and the reason
        with quiet_native_stderr(relay=False, only_runtime=True) as native:
            return bounded(grab, PROBE_TIMEOUT_S, f"camera {source!r}", CameraProbeError)
    except CameraProbeError as exc:
        why = native_why(native.lines)
        raise CameraProbeError(f"{exc} ({why})" if why else str(exc)) from None


# broker --------------------------------------------------------------------------------------
def broker(cfg: Config, timeout: float = 5.0) -> str:
    """Connect with the agent's TLS settings and credentials (``mqtt.link.check_broker``)."""
    from ..mqtt.link import check_broker

    ok, message = check_broker(cfg, timeout=timeout)
    if ok:
        return message
    low = message.lower()
    if "auth" in low or "password" in low or "user name" in low:
        raise BrokerAuthError(message)
    if "tls" in low or "certificate" in low:
        raise BrokerTLSError(message)
    raise BrokerUnreachable(message)


# registry ------------------------------------------------------------------------------------
def registry(cfg: Config, timeout: float = 5.0) -> str:
    base = cfg.updates.registry or ""
    if base.startswith("file://"):
        path = Path(base[len("file://") :])
        if not path.is_dir():
            raise RegistryUnreachable(f"registry folder {path} does not exist")
        return f"{path}: folder present"
    ctx = ssl.create_default_context(cafile=str(cfg.updates.ca) if cfg.updates.ca else None)
    req = urllib.request.Request(base.rstrip("/") + "/", method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return f"{base}: HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise RegistryUnreachable(f"registry {base}: HTTP {exc.code}") from None
        if exc.code in (404, 410):  # the server answers, but there is no registry at that path
            raise RegistryUnreachable(
                f"registry {base}: HTTP {exc.code}, nothing at that path (a registry folder "
                "written by `edge-agent registry publish` answers 200 or 403)"
            ) from None
        return f"{base}: reachable (HTTP {exc.code} for the base URL)"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryUnreachable(f"registry {base} unreachable: {reason}") from None


# serial --------------------------------------------------------------------------------------
def serial_hello(cfg: Config) -> str:
    """Open the bridge's port and ask the board for HELLO (``bridge.check_bridge``)."""
    from ..bridge.component import check_bridge

    ok, message = check_bridge(cfg)
    if not ok:
        raise SerialProbeError(message if cfg.bridge.port in message
                               else f"serial port {cfg.bridge.port}: {message}")
    return message
