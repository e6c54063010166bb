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

from .config import Config
from .errors import EdgeAgentError
from .resources import shipped_model

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
def boot_model(cfg: Config) -> Path:
    """The model file the agent would boot with."""
    if cfg.model.path is not None:
        return cfg.model.path
    return shipped_model()


def store_sha256(model: Path, cfg: Config) -> str | None:
    """The sha256 the model store recorded for ``model``, if it lives in the store."""
    return None


def backend_and_delegates(cfg: Config) -> tuple[str, str]:
    """Load the backend, each configured delegate and the model; (detail, failed delegates)."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as exc:
        raise ProbeError(f"no inference backend importable: {exc}") from None
    failed = []
    for d in cfg.model.delegates:
        try:
            litert.load_delegate(d.library, dict(d.options))
        except (ValueError, OSError, RuntimeError) as exc:
            failed.append(f"{d.library} ({str(exc).splitlines()[0] if str(exc) else 'not found'})")
    model = boot_model(cfg)
    # LiteRT's C++ side prints "INFO: Created TensorFlow Lite XNNPACK delegate" straight to
    # fd 2, which breaks the CLI's one-line error promise; the Python exception already says
    # what failed. (Switch to edge_agent.inference.native.quiet_native_stderr once it lands.)
    import os

    saved_fd2, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        interp = litert.Interpreter(model_path=str(model), num_threads=cfg.model.threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ProbeError(f"{model}: does not load: {exc}") from None
    finally:
        os.dup2(saved_fd2, 2)
        os.close(saved_fd2)
        os.close(devnull)
    return f"litert loads {model.name}", "; ".join(failed)


# camera --------------------------------------------------------------------------------------
def camera_frame(cfg: Config) -> str:
    """Open the configured source and read one frame."""
    source = cfg.camera.source
    if source == "synthetic":
        return "synthetic source (no camera)"

    def grab() -> str:
        import cv2

        target: int | str = int(source) if source.isdigit() else source
        cap = cv2.VideoCapture(target)
        try:
            if not cap.isOpened():
                raise CameraProbeError(f"camera {source!r} does not open")
            ok, frame = cap.read()
            if not ok or frame is None:
                raise CameraProbeError(f"camera {source!r} opens but gives no frame")
            h, w = frame.shape[:2]
            return f"{source}: one frame {w}x{h}"
        finally:
            cap.release()

    return bounded(grab, PROBE_TIMEOUT_S, f"camera {source!r}", CameraProbeError)


# broker --------------------------------------------------------------------------------------
def broker(cfg: Config, timeout: float = 5.0) -> str:
    """Connect with the agent's TLS settings and credentials (``mqtt.link.check_broker``)."""
    from .mqtt.link import check_broker

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
        return f"{base}: reachable (HTTP {exc.code} for the base URL)"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryUnreachable(f"registry {base} unreachable: {reason}") from None


# serial --------------------------------------------------------------------------------------
def serial_hello(cfg: Config) -> str:
    import serial

    b = cfg.bridge
    try:
        port = serial.serial_for_url(b.port, baudrate=b.baudrate, timeout=b.timeout_s)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise SerialProbeError(f"serial port {b.port} does not open: {exc}") from None
    port.close()
    return f"{b.port} opens at {b.baudrate} baud"
