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
    try:
        interp = litert.Interpreter(model_path=str(model), num_threads=cfg.model.threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ProbeError(f"{model}: does not load: {exc}") from None
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
def _password(cfg: Config) -> str | None:
    if cfg.mqtt.password is not None:
        return cfg.mqtt.password.get_secret_value()
    if cfg.mqtt.password_file is not None:
        try:
            return cfg.mqtt.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BrokerAuthError(
                f"mqtt.password_file {cfg.mqtt.password_file}: {exc.strerror}"
            ) from None
    return None


def broker(cfg: Config, timeout: float = 5.0) -> str:
    """Connect (TLS, credentials as configured), wait for CONNACK, disconnect."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    m = cfg.mqtt
    where = f"{m.host}:{m.port}"
    proto = mqtt.MQTTv5 if m.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{cfg.mqtt_client_id}-doctor", protocol=proto
    )
    if m.username is not None:
        client.username_pw_set(m.username, _password(cfg))
    if m.tls is not None:
        try:
            client.tls_set(
                ca_certs=str(m.tls.ca) if m.tls.ca else None,
                certfile=str(m.tls.cert) if m.tls.cert else None,
                keyfile=str(m.tls.key) if m.tls.key else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise BrokerTLSError(f"mqtt.tls files unusable: {exc}") from None
        client.tls_insecure_set(not m.tls.verify_hostname)
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        result["rc"] = reason
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(m.host, m.port, keepalive=10)
    except ssl.SSLError as exc:
        raise BrokerTLSError(f"broker {where}: TLS handshake failed: {exc.reason}") from None
    except OSError as exc:
        raise BrokerUnreachable(f"broker {where} unreachable: {exc.strerror or exc}") from None
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    rc = result.get("rc")
    if rc is None:
        raise BrokerUnreachable(f"broker {where}: no CONNACK within {timeout:g} s")
    if rc.is_failure:
        if rc.value in (134, 135):  # bad user name or password / not authorized
            raise BrokerAuthError(f"broker {where} refused the credentials: {rc}")
        raise BrokerUnreachable(f"broker {where} refused the connection: {rc}")
    tls = "TLS" if m.tls is not None else "plain TCP"
    user = f", user {m.username}" if m.username else ""
    return f"{where} accepts the connection ({tls}{user}, MQTT {m.protocol})"


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
