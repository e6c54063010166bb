"""One configuration tree for the whole agent.

Parsing a dict (:func:`parse_config`) is separate from reading a file (:func:`load_config`);
nothing here reads the environment or the disk at import. Unknown keys are errors
(``extra="forbid"``), so a misspelled key fails loudly; a validation error names the key and the
file (and the line, when the key can be found in it).

Environment overrides: ``EDGE_AGENT_<SECTION>__<KEY>=value`` (double underscore between levels),
e.g. ``EDGE_AGENT_MQTT__HOST=broker.local`` or ``EDGE_AGENT_MODEL__THREADS=2``. Values are read
as JSON when they parse as JSON (numbers, booleans, lists), otherwise as strings.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .common import names
from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "EDGE_AGENT_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeviceConfig(_Section):
    id: str = Field(
        default_factory=lambda: socket.gethostname() or "edge-device",
        description="Device id; part of every MQTT topic (edge/<id>/...).",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    groups: list[str] = Field(
        default_factory=list, description="Fleet groups this device answers commands for."
    )
    state_dir: Path = Field(
        default_factory=lambda: default_state_dir(),
        description="Writable directory for the model store, outbox, seq counters and state.",
    )

    @field_validator("id")
    @classmethod
    def _id_one_component(cls, v: str) -> str:
        return names.check(v, "device id", max_len=64)  # a topic level and a file name part

    @field_validator("groups")
    @classmethod
    def _groups_one_component(cls, v: list[str]) -> list[str]:
        for g in v:
            names.check(g, "group", max_len=64)
        return v


class DelegateConfig(_Section):
    library: str = Field(description="Delegate shared library, e.g. libedgetpu.so.1")
    options: dict[str, str] = Field(default_factory=dict, description="Delegate options")


class ModelConfig(_Section):
    path: Path | None = Field(
        default=None,
        description="Model file (.tflite). Empty: the shipped factory model.",
    )
    description: Path | None = Field(
        default=None,
        description="Model description JSON (pre/post-processing, labels). "
        "Empty: <model>.json beside the model, if present.",
    )
    threads: int = Field(default=1, ge=1, le=64, description="Interpreter threads (num_threads)")
    backend: Literal["auto", "litert", "tflite_runtime", "tensorflow"] = Field(
        default="auto", description="Inference runtime; auto = LiteRT, tflite-runtime, TF Lite"
    )
    delegates: list[DelegateConfig] = Field(
        default_factory=list, description="Delegate chain, tried in order, CPU last."
    )
    accelerator: list[Literal["npu", "gpu", "cpu"]] = Field(
        default_factory=list,
        description="LiteRT CompiledModel accelerators, tried in order (e.g. npu, gpu, cpu); "
        "empty: the Interpreter (and the delegate chain)",
    )
    decoder: str | None = Field(default=None, description="Override the description's decoder")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="Score threshold")
    top_k: int | None = Field(default=None, ge=1, le=1000, description="Classes/boxes to keep")
    labels: Path | None = Field(
        default=None, description="Labels file: one per line, or `ID name` / `ID: name` lines"
    )


class CameraConfig(_Section):
    source: str = Field(
        default="synthetic",
        description="0 | /dev/videoN | rtsp://... | http(s)://... | video file | image folder | "
        "synthetic | demo (the shipped demo clip)",
    )
    width: int | None = Field(
        default=None, ge=16, le=8192, description="Capture width asked of the camera (px)")
    height: int | None = Field(
        default=None, ge=16, le=8192, description="Capture height asked of the camera (px)")
    fps: float | None = Field(
        default=None, gt=0, le=1000, description="Frame rate asked of a camera; for files and "
        "images the rate they are played at")
    fourcc: str | None = Field(
        default=None, min_length=4, max_length=4,
        description="Pixel format asked of a V4L2 camera, e.g. MJPG or YUYV")
    loop: bool = Field(default=True, description="Loop video files and image folders")
    policy: Literal["latest", "all"] = Field(
        default="latest", description="latest: drop stale frames (live); all: never drop"
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("source", mode="before")
    @classmethod
    def _index(cls, v: object) -> object:
        """A V4L2 index may be a TOML integer (`source = 0`) or EDGE_AGENT_CAMERA__SOURCE=3."""
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 0:
                raise ValueError("a camera index is 0 or more")
            return str(v)
        return v


class PipelineConfig(_Section):
    snapshot_ring: int = Field(default=8, ge=0, le=256, description="Annotated frames kept")
    stdout_jsonl: bool = Field(default=False, description="Print each result as a JSON line")
    schedule: Literal["auto", "overlap", "serial"] = Field(
        default="auto",
        description="auto: overlap decode/preprocess with invoke when the interpreter's "
        "threads leave a core free, else serial; or force one",
    )
    economy: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: run the interpreter on 1 thread while the camera leaves it idle "
        "over half the time (less CPU per frame, a slower invoke); off: always model.threads",
    )


class MetricsConfig(_Section):
    interval_s: float = Field(default=5.0, gt=0, le=3600, description="Metrics period")


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["human", "json"] = "human"


class TLSConfig(_Section):
    ca: Path | None = Field(default=None, description="CA bundle to verify the broker")
    cert: Path | None = Field(default=None, description="Client certificate (PEM)")
    key: Path | None = Field(default=None, description="Client private key (PEM)")
    verify_hostname: bool = Field(default=True, description="Never turn off in production")


class OutboxConfig(_Section):
    max_records: int = Field(default=100_000, ge=10, le=10_000_000)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    max_age_s: float = Field(default=7 * 24 * 3600, gt=0)


class MQTTConfig(_Section):
    enabled: bool = Field(default=False, description="Connect to a broker")
    host: str = Field(default="localhost")
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = Field(default=None, description="Default: edge-agent-<device id>")
    username: str | None = None
    password: SecretStr | None = Field(
        default=None, description="Prefer password_file or EDGE_AGENT_MQTT__PASSWORD"
    )
    password_file: Path | None = None
    tls: TLSConfig | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="Deadline of one connection attempt: TCP connect, TLS handshake and the "
        "broker's CONNACK (then the next attempt, after the backoff)",
    )
    session_expiry_s: int = Field(default=24 * 3600, ge=0)
    prefix: str | None = Field(default=None, description="Default: edge/<device id>")
    group_prefix: str = Field(default="edge/group", description="Group command topics root")
    events_per_s: float = Field(default=2.0, gt=0, le=1000, description="Event rate limit")
    max_event_bytes: int = Field(default=16 * 1024, ge=256)
    max_command_bytes: int = Field(default=64 * 1024, ge=256)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    reconnect_initial_s: float = Field(default=1.0, ge=1, le=60, description="First retry delay")
    reconnect_max_s: float = Field(default=60.0, ge=1, le=3600, description="Backoff ceiling")
    max_inflight: int = Field(default=64, ge=1, le=1000, description="Unacked QoS 1 records")
    command_queue: int = Field(default=16, ge=1, le=1000, description="Commands waiting to run")
    recent_commands: int = Field(default=256, ge=1, le=100_000, description="Ids kept for repeats")

    @field_validator("prefix", "group_prefix")
    @classmethod
    def _plain_topic(cls, v: str | None) -> str | None:
        from .mqtt.topics import check_prefix  # here: edge_agent.mqtt imports this module

        return None if v is None else check_prefix(v, "topic")
    snapshot_per_s: float = Field(
        default=1.0, gt=0, le=100, description="snapshot commands per second (bursts of 3)"
    )


class UpdatesConfig(_Section):
    registry: str | None = Field(default=None, description="http(s):// or file:// registry base")
    trusted_keys: list[Path] = Field(default_factory=list, description="Ed25519 public keys")
    poll_interval_s: float = Field(default=0, ge=0, description="0 = only on command")
    keep_versions: int = Field(default=3, ge=2, le=50)
    max_manifest_bytes: int = Field(default=256 * 1024, ge=1024)
    max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_staging_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024,
        description="Largest sum of one release's files (the staging folder's limit)",
    )
    download_timeout_s: float = Field(
        default=60.0, gt=0,
        description="Deadline of the manifest download, and the fixed part of each file's",
    )
    min_rate_bytes_s: int = Field(
        default=16 * 1024, ge=1,
        description="Slowest registry rate accepted: a file's deadline is "
        "download_timeout_s + size / min_rate_bytes_s (16 KiB/s: 64 MiB in 69 min)",
    )
    trial_inferences: int = Field(default=200, ge=1)
    trial_seconds: float = Field(default=30.0, gt=0)
    trial_attempts: int = Field(default=2, ge=1, le=10)
    trial_camera_wait_s: float = Field(
        default=300.0, gt=0,
        description="How long a trial waits for a missing camera (its window stands still) "
        "before it ends camera_unavailable",
    )
    preflight_timeout_s: float = Field(default=60.0, gt=0)
    ca: Path | None = Field(default=None, description="CA bundle for an https registry")


class OutputRule(_Section):
    label: str
    min_score: float = Field(default=0.5, ge=0, le=1)
    pin: int = Field(ge=0, le=255)
    value: int = Field(default=1, ge=0, le=1)
    hold_ms: int = Field(default=500, ge=0, le=3_600_000)


class BridgeConfig(_Section):
    enabled: bool = False
    port: str = Field(default="/dev/ttyUSB0", description="pyserial URL or device path")
    baudrate: int = Field(default=115200, ge=1200)
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    retries: int = Field(default=2, ge=0, le=10)
    watchdog_timeout_ms: int = Field(
        default=0, ge=0, le=600_000, description="0 = board watchdog off, else 100..600000"
    )
    stall_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="The agent counts as stalled (watchdog no longer kicked) when it has "
        "processed no frame, and has not been waiting for its camera, for this long",
    )
    telemetry_interval_s: float = Field(default=2.0, gt=0, le=3600)
    trigger_pin: int | None = Field(default=None, ge=0, le=254)
    trigger_edge: Literal["rising", "falling", "both"] = "rising"
    trigger_debounce_ms: int = Field(default=50, ge=0, le=65535)
    rules: list[OutputRule] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _watchdog_range(self) -> BridgeConfig:
        if 0 < self.watchdog_timeout_ms < 100:
            raise ValueError("bridge.watchdog_timeout_ms must be 0 (off) or at least 100")
        return self


class CapturesConfig(_Section):
    """``<state_dir>/captures/``: frames saved when the board's trigger input fires."""

    max_count: int = Field(
        default=100, ge=1, le=100_000, description="Captures kept; the oldest are deleted"
    )
    max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=64 * 1024, description="Bytes kept; the oldest are deleted"
    )
    per_minute: float = Field(
        default=12.0, gt=0, le=6000, description="Captures per minute on average; more: refused"
    )
    burst: int = Field(default=5, ge=1, le=1000, description="Captures allowed back to back")


class ThermalConfig(_Section):
    """The frame-rate governor (``ops/thermal_governor.py``, docs/operations.md)."""

    enabled: bool = False
    root: Path = Field(default=Path("/"), description="Where /sys is looked for (tests: a fake)")
    zones: list[str] = Field(
        default_factory=list, description="Thermal zone types to watch (empty: all)"
    )
    vcgencmd: bool = Field(default=True, description="Ask vcgencmd when the sysfs node is absent")
    interval_s: float = Field(default=1.0, gt=0, le=60)
    target_c: float = Field(default=75.0, gt=0, le=150, description="Hold the forecast under it")
    hysteresis_c: float = Field(default=5.0, gt=0, le=50)
    horizon_s: float = Field(default=10.0, ge=0, le=600, description="Forecast this far ahead")
    settle_s: float = Field(default=5.0, ge=0, le=600, description="Between two cap changes")
    min_fps: float = Field(default=1.0, gt=0, le=1000)
    max_fps: float | None = Field(
        default=None, gt=0, le=1000, description="Uncapped rate (default: measured at capping)"
    )
    power_budget_w: float | None = Field(default=None, gt=0, description="Bridge board power")


class ControlConfig(_Section):
    socket: Path | None = Field(
        default=None, description="Local status socket. Default: <state_dir>/agent.sock"
    )


class HTTPConfig(_Section):
    """The device's HTTP API, /metrics, health probes and technician page (docs/http.md)."""

    enabled: bool = Field(default=True, description="Serve the HTTP API inside the agent")
    host: str = Field(
        default="127.0.0.1", min_length=1,
        description="Bind address; anything but loopback needs token_file",
    )
    port: int = Field(default=8770, ge=0, le=65535, description="TCP port (0: any free port)")
    token_file: Path | None = Field(
        default=None,
        description="Bearer token (>= 16 characters); required beyond loopback and for the "
        "commands that change state",
    )
    cert: Path | None = Field(default=None, description="TLS certificate (PEM); with key")
    key: Path | None = Field(default=None, description="TLS private key (PEM); with cert")
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024,
        description="Largest /v1/infer body (larger: 413)",
    )
    infer_workers: int = Field(
        default=1, ge=1, le=8, description="Interpreters of /v1/infer (apart from the camera's)"
    )
    max_infer: int = Field(
        default=4, ge=1, le=256, description="/v1/infer requests running or waiting (more: 429)"
    )
    max_requests: int = Field(
        default=64, ge=1, le=10_000, description="Connections served at once (more: 503)"
    )
    stream_clients: int = Field(default=4, ge=1, le=64, description="/v1/stream.mjpg viewers")
    stream_fps: float = Field(default=5.0, gt=0, le=60, description="/v1/stream.mjpg rate")
    ready_max_frame_age_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="/readyz: 503 when no frame was processed for this long",
    )
    nice: int = Field(
        default=5, ge=0, le=19,
        description="The API's threads run this much below the pipeline (0: the same)",
    )
    infer_duty: float = Field(
        default=0.05, ge=0, le=64,
        description="/v1/infer's share of a core while the camera pipeline is contended "
        "(dropping stale frames); 0: no cap",
    )
    inline_max_pixels: int = Field(
        default=500_000, ge=0, le=40_000_000,
        description="/v1/infer images up to this many pixels (by their header) run on the "
        "event loop when nothing else is in flight (0: always on a pool thread)",
    )

    @model_validator(mode="after")
    def _cert_and_key(self) -> HTTPConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("http.cert and http.key go together: set both or neither")
        return self


class Config(_Section):
    """The whole agent's configuration."""

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig)
    updates: UpdatesConfig = Field(default_factory=UpdatesConfig)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    captures: CapturesConfig = Field(default_factory=CapturesConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    http: HTTPConfig = Field(default_factory=HTTPConfig)
    thermal: ThermalConfig = Field(default_factory=ThermalConfig)
    _source: Path | None = PrivateAttr(default=None)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        if self.camera.reconnect_max_s < self.camera.reconnect_initial_s:
            raise ValueError(
                "camera.reconnect_max_s must be >= camera.reconnect_initial_s; raise the maximum"
            )
        if self.mqtt.password is not None and self.mqtt.password_file is not None:
            raise ValueError("set mqtt.password or mqtt.password_file, not both")
        return self

    # Derived values -----------------------------------------------------------------------
    @property
    def warnings(self) -> list[str]:
        """Things that work but should change (one line each); ``run`` logs them at start."""
        return list(self._warnings)

    @property
    def source(self) -> Path | None:
        """The file this config was read from (None: defaults/env only); SIGHUP re-reads it."""
        return self._source

    @property
    def mqtt_prefix(self) -> str:
        return self.mqtt.prefix or f"edge/{self.device.id}"

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"edge-agent-{self.device.id}"

    @property
    def control_socket(self) -> Path:
        return self.control.socket or (self.device.state_dir / "agent.sock")


def default_state_dir() -> Path:
    """systemd's $STATE_DIRECTORY, else $XDG_STATE_HOME/edge-agent, else ~/.local/state."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "edge-agent"


# ------------------------------------------------------------------------------------------
# Parsing


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            continue
        value: Any
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return out


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), dict):
            merged[k] = _deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _find_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best effort: the line of ``key`` under its ``[section]`` in a TOML text."""
    keys = [str(p) for p in loc if not isinstance(p, int)]
    if not keys:
        return None
    section, key = ".".join(keys[:-1]), keys[-1]
    current = ""
    for no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        m = re.match(r"^\[+\s*([^\]]+?)\s*\]+", stripped)
        if m:
            current = m.group(1)
            if not section and current == key:
                return no
            continue
        if current == section and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return no
    return None


def _format_errors(err: ValidationError, where: str, text: str | None) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e.get("loc", ()))
        key = ".".join(str(p) for p in loc) or "(top level)"
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown key (misspelled? see `edge-agent config schema`)"
        place = where
        if text is not None:
            line = _find_line(text, loc)
            if line is not None:
                place = f"{where}:{line}"
        lines.append(f"{place}: {key}: {msg}")
    return "; ".join(lines)


def validation_message(err: ValidationError, where: str, text: str | None) -> str:
    """One line per problem, ``file:line: key: what`` (for other TOML files, e.g. fleet.toml)."""
    return _format_errors(err, where, text)


def read_toml(p: Path) -> tuple[dict[str, Any], str]:
    """A TOML file's data and text; ConfigError naming the file if it cannot be read."""
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def parse_config(
    data: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    where: str = "<config>",
    text: str | None = None,
) -> Config:
    """Build a :class:`Config` from a dict plus optional ``EDGE_AGENT_*`` overrides."""
    merged = _deep_merge(dict(data), _env_overrides(environ or {}))
    try:
        return Config.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, where, text)) from None


def load_config(path: Path | str | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read a TOML file (or nothing: embedded defaults) and apply environment overrides."""
    env = os.environ if environ is None else environ
    if path is None:
        return parse_config({}, environ=env, where="<defaults>")
    p = Path(path)
    data, text = read_toml(p)
    cfg = parse_config(data, environ=env, where=str(p), text=text)
    cfg._source = p
    cfg._warnings = file_warnings(data, str(p), text)
    return _resolve_relative(cfg, p.parent)


def file_warnings(data: Mapping[str, Any], where: str, text: str | None = None) -> list[str]:
    """What a config file holds that works but should not be there (e.g. a plain password)."""
    out = []
    mqtt = data.get("mqtt")
    if isinstance(mqtt, Mapping) and mqtt.get("password") not in (None, ""):
        line = _find_line(text, ("mqtt", "password")) if text is not None else None
        place = f"{where}:{line}" if line is not None else where
        out.append(
            f"{place}: mqtt.password is written in the config file in plain text; put it in a "
            "file only the agent's user can read (chmod 600) and set mqtt.password_file to it "
            "(or set EDGE_AGENT_MQTT__PASSWORD), then remove mqtt.password"
        )
    return out


def _resolve_relative(cfg: Config, base: Path) -> Config:
    """Paths in a config file are relative to the file's folder."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p)

    cfg.model.path = fix(cfg.model.path)
    cfg.model.description = fix(cfg.model.description)
    cfg.model.labels = fix(cfg.model.labels)
    cfg.device.state_dir = fix(cfg.device.state_dir) or cfg.device.state_dir
    cfg.mqtt.password_file = fix(cfg.mqtt.password_file)
    if cfg.mqtt.tls is not None:
        cfg.mqtt.tls.ca = fix(cfg.mqtt.tls.ca)
        cfg.mqtt.tls.cert = fix(cfg.mqtt.tls.cert)
        cfg.mqtt.tls.key = fix(cfg.mqtt.tls.key)
    cfg.updates.trusted_keys = [fix(k) or k for k in cfg.updates.trusted_keys]
    cfg.updates.ca = fix(cfg.updates.ca)
    cfg.control.socket = fix(cfg.control.socket)
    cfg.http.token_file = fix(cfg.http.token_file)
    cfg.http.cert = fix(cfg.http.cert)
    cfg.http.key = fix(cfg.http.key)
    return cfg


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1): reachable from this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path | None, what: str) -> str | None:
    """A bearer token file's token (stripped; at least 16 characters), None for no file."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{what} {path}: cannot read it ({reason})") from None
    if len(token) < 16:
        raise ConfigError(f"{what} {path}: the token is shorter than 16 characters")
    return token


SECRET_KEYS = frozenset({"password", "key", "password_file"})


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data with secrets replaced by ``"***"``."""
    data = cfg.model_dump(mode="json")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("***" if k in SECRET_KEYS and v not in (None, "") else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(data)
    return result
