"""The update manifest: its schema and the checks a device runs on it, as pure code.

:func:`verify_manifest` takes bytes (the manifest and its detached signature as fetched), the
trust store, what the device already knows (highest ``seq`` seen, the input shape it feeds) and
the current time, and returns a :class:`Manifest` or raises one :class:`ManifestRejected`
subclass. It never touches the network or the disk. The checks run in a fixed order:

1. size cap            -> ManifestTooLarge
2. signature           -> UnsignedManifest, BadSignature, UnknownKey
3. JSON and schema     -> ManifestNotJSON, ManifestInvalid
4. file names          -> BadFileName
5. name                -> WrongModelName
6. version (``seq``)   -> DowngradeRefused
7. expiry              -> ManifestExpired
8. compatibility       -> Incompatible (agent version, runtime), InputShapeMismatch

Hashes and sizes of the files are checked while they download (``fetch.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..common import names
from .errors import (
    BadFileName,
    BadSignature,
    DowngradeRefused,
    Incompatible,
    InputShapeMismatch,
    ManifestExpired,
    ManifestInvalid,
    ManifestNotJSON,
    ManifestTooLarge,
    UnknownKey,
    UnsignedManifest,
    WrongModelName,
)
from .keys import SIG_ALG, TrustStore

SCHEMA = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
MAX_SIGNATURE_BYTES = 4096
Runtime = Literal["litert", "tflite_runtime", "tensorflow"]
RUNTIMES: tuple[Runtime, ...] = ("litert", "tflite_runtime", "tensorflow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TensorInfo(_Strict):
    name: str = ""
    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


class ModelIO(_Strict):
    file: str = Field(description="Name of the .tflite in files[]")
    inputs: list[TensorInfo] = Field(min_length=1)
    outputs: list[TensorInfo] = Field(min_length=1)


class Compatibility(_Strict):
    runtimes: list[Runtime] = Field(
        default_factory=lambda: list(RUNTIMES)
    )
    min_agent: str = "0.0.0"


class Golden(_Strict):
    file: str = Field(description="npz in files[]: input0.., output0.. arrays")
    atol: float = Field(default=0.0, ge=0)
    rtol: float = Field(default=0.0, ge=0)


class Shadow(_Strict):
    """Shadow evaluation before the swap (:mod:`.shadow`): the candidate runs on its own
    interpreter beside the active model on a sample of the live frames; the update goes on only
    if its results agree with the active model's on ``min_frames`` frames at least
    ``min_agreement`` (:meth:`edge_agent.inference.agreement.AgreementTally.agreement`)."""

    sample_rate: float = Field(default=0.5, gt=0, le=1, description="share of frames offered")
    min_frames: int = Field(default=30, ge=1, le=100_000)
    min_agreement: float = Field(default=0.8, ge=0, le=1)
    cpu_budget: float = Field(
        default=0.25, gt=0, le=1, description="share of one core the shadow may use"
    )
    max_seconds: float = Field(default=300.0, gt=0, le=86_400)


class Health(_Strict):
    latency_budget_ms: float | None = Field(default=None, gt=0)
    golden: Golden | None = None
    trial_inferences: int | None = Field(default=None, ge=1)
    trial_seconds: float | None = Field(default=None, gt=0)
    max_latency_ratio: float = Field(default=2.0, gt=1.0, description="trial p95 / old p95")
    shadow: Shadow | None = None  # an agent without shadow support refuses it (extra key)


class Evaluation(BaseModel):
    """What ``models compare`` found before the release (``registry publish --report``):
    the owner's line and the figures behind it. Informational: no check reads it; kept as
    given (extra keys allowed) so newer publishers can add figures."""

    model_config = ConfigDict(extra="allow", frozen=True)

    summary: str = Field(min_length=1, max_length=400)
    reference: dict[str, Any] = Field(default_factory=dict, description="model A: name, sha256")
    frames: int | None = Field(default=None, ge=0)
    source: str | None = None
    agreement: dict[str, Any] = Field(default_factory=dict)
    accuracy: dict[str, Any] | None = None
    ratios: dict[str, Any] = Field(default_factory=dict)


class Manifest(_Strict):
    schema_: Literal[1] = Field(alias="schema")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    seq: int = Field(ge=0)
    created: datetime
    expires: datetime
    files: list[FileEntry] = Field(min_length=1, max_length=16)
    model: ModelIO
    postprocessing: dict[str, Any] = Field(description="The model description JSON")
    compatibility: Compatibility = Field(default_factory=Compatibility)
    health: Health = Field(default_factory=Health)
    evaluation: Evaluation | None = None

    @field_validator("name", "version")
    @classmethod
    def _one_component(cls, v: str) -> str:
        return names.check(v, "value")  # versions/<name>/<version>-<sha12> on the device

    @field_validator("created", "expires")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("timestamp needs a time zone (e.g. 2026-01-01T00:00:00Z)")
        return v

    def file(self, name: str) -> FileEntry:
        for f in self.files:
            if f.name == name:
                return f
        raise ManifestInvalid(f"manifest {self.name} {self.version}: no file {name!r} in files[]")

    @property
    def model_file(self) -> FileEntry:
        return self.file(self.model.file)

    @property
    def input_shape(self) -> list[int]:
        return self.model.inputs[0].shape


def check_file_name(name: str) -> None:
    """A file name in a manifest must be one plain path component (:mod:`edge_agent.common.names`)
    other than the manifest's own names."""
    bad = names.problem(name)
    if bad is None and name in (MANIFEST_NAME, SIGNATURE_NAME):
        bad = "collides with the manifest"
    if bad:
        raise BadFileName(
            f"manifest file name {name[:80]!r} {bad}; only plain names are accepted - "
            "republish the model with plain file names"
        )


def _parse_signature(sig: bytes | None, where: str) -> tuple[str, bytes]:
    if not sig or not sig.strip():
        raise UnsignedManifest(
            f"{where}: manifest is not signed (no {SIGNATURE_NAME}); "
            "publish it with `edge-agent registry publish --key`"
        )
    if len(sig) > MAX_SIGNATURE_BYTES:
        raise BadSignature(f"{where}: signature file larger than {MAX_SIGNATURE_BYTES} bytes")
    try:
        env = json.loads(sig)
        alg, keyid, raw = env["alg"], env["keyid"], base64.b64decode(env["sig"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadSignature(f"{where}: signature file is malformed") from None
    if alg != SIG_ALG or not isinstance(keyid, str):
        raise BadSignature(f"{where}: signature algorithm {alg!r} is not {SIG_ALG}")
    return keyid, raw


def verify_signature(raw: bytes, sig: bytes | None, trust: TrustStore, where: str) -> str:
    """Check the detached signature; returns the key id that signed."""
    keyid, signature = _parse_signature(sig, where)
    if keyid not in trust.keys:
        known = ", ".join(sorted(trust.keys)) or "none"
        raise UnknownKey(
            f"{where}: signed by key {keyid}, which is not in [updates] trusted_keys "
            f"(trusted: {known})"
        )
    if not trust.verify(keyid, signature, raw):
        raise BadSignature(
            f"{where}: signature by key {keyid} does not match the manifest "
            "(altered after signing, or signed with another key)"
        )
    return keyid


def parse_manifest(raw: bytes, where: str) -> Manifest:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ManifestNotJSON(f"{where}: manifest is not JSON") from None
    if not isinstance(data, dict):
        raise ManifestNotJSON(f"{where}: manifest is not a JSON object")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ())) or "(top level)"
            msg = "missing" if e.get("type") == "missing" else e.get("msg", "invalid")
            problems.append(f"{loc}: {msg}")
        raise ManifestInvalid(f"{where}: invalid manifest: " + "; ".join(problems)) from None


def verify_manifest(
    raw: bytes,
    sig: bytes | None,
    trust: TrustStore,
    *,
    expected_name: str | None,
    highest_seq: int | None,
    now: datetime,
    max_bytes: int,
    runtime: str | None = None,
    input_shape: list[int] | None = None,
    agent_version: str | None = None,
    where: str = "manifest",
) -> Manifest:
    """All manifest checks in their fixed order (see the module docstring)."""
    if len(raw) > max_bytes:
        raise ManifestTooLarge(
            f"{where}: manifest is over the {max_bytes}-byte cap "
            "([updates] max_manifest_bytes); refusing to parse it"
        )
    verify_signature(raw, sig, trust, where)
    m = parse_manifest(raw, where)
    for f in m.files:
        check_file_name(f.name)
    names = [f.name for f in m.files]
    if len(set(names)) != len(names):
        raise ManifestInvalid(f"{where}: a file name appears twice in files[]")
    m.model_file  # noqa: B018 - raises ManifestInvalid if the model file is not listed
    if m.health.golden is not None:
        m.file(m.health.golden.file)
    if expected_name is not None and m.name != expected_name:
        raise WrongModelName(f"{where}: manifest is for model {m.name!r}, not {expected_name!r}")
    if highest_seq is not None and m.seq <= highest_seq:
        raise DowngradeRefused(
            f"{where}: {m.name} {m.version} has seq {m.seq}, not above {highest_seq} already "
            "seen; an older model is installed only through `rollback`"
        )
    if now >= m.expires:
        raise ManifestExpired(
            f"{where}: manifest expired at {m.expires.isoformat()}; republish it "
            "(or check the device clock)"
        )
    need = m.compatibility.min_agent
    if agent_version is not None and _version_key(agent_version) < _version_key(need):
        raise Incompatible(
            f"{where}: model needs edge-agent {need} or newer, this device runs {agent_version}; "
            "upgrade the agent first"
        )
    if runtime is not None and runtime not in m.compatibility.runtimes:
        raise Incompatible(
            f"{where}: model needs runtime {'/'.join(m.compatibility.runtimes)}, "
            f"this device runs {runtime}"
        )
    if input_shape is not None and list(input_shape) != list(m.input_shape):
        raise InputShapeMismatch(
            f"{where}: model input shape {m.input_shape} differs from the "
            f"{list(input_shape)} this device feeds"
        )
    return m


def _version_key(v: str) -> tuple[int, ...]:
    """``1.10.2`` -> (1, 10, 2); anything after the leading numbers is ignored."""
    parts = []
    for p in v.split("."):
        digits = ""
        for ch in p:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
