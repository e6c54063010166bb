"""The central side: build, sign and write one model release into a registry directory.

``<to>/<name>/<version>/`` receives ``manifest.json``, ``manifest.json.sig``, the model file,
and the golden file when one is given. Any static HTTP server (nginx, S3/MinIO, a CDN) can
serve that tree; a device can also read it through ``file://``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..common import names
from ..common.atomicfile import atomic_write_bytes as write_atomic
from ..common.atomicfile import fsync_dir
from ..errors import ConfigError, ModelError
from .errors import ReleaseExists, ReportMismatch, UnsafeReleaseName
from .keys import load_private, sign
from .manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    check_file_name,
    parse_manifest,
)

GOLDEN_NAME = "golden.npz"
TFLITE_MAGIC = b"TFL3"


@dataclass
class Release:
    directory: Path
    manifest: Manifest
    keyid: str


def file_entry(path: Path, name: str | None = None) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return {"name": name or path.name, "size": path.stat().st_size, "sha256": h.hexdigest()}


def tensor_info(spec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": str(spec.name),
        "shape": [int(x) for x in spec.shape],
        "dtype": np.dtype(spec.dtype).name,
    }
    q = getattr(spec, "quantization", None)
    scales = np.asarray(getattr(q, "scales", []), dtype=np.float64).reshape(-1)
    zps = np.asarray(getattr(q, "zero_points", []), dtype=np.int64).reshape(-1)
    if scales.size == 1 and scales[0]:
        out["scale"] = float(scales[0])
        out["zero_point"] = int(zps[0]) if zps.size else 0
    return out


def golden_outputs(model_path: Path, inputs: list[np.ndarray], threads: int = 1) -> list[Any]:
    """Run the model on the golden inputs; the expected outputs the device must reproduce."""
    from ..inference import Model

    model = Model(model_path, threads=threads)
    for i, arr in enumerate(inputs):
        view = model.input_view(i)
        view[...] = arr.astype(view.dtype).reshape(view.shape)
        del view
    model.invoke()
    return list(model.outputs_all())


def build_golden(model_path: Path, golden: Path, dest: Path) -> None:
    """Write ``dest`` (npz with input0.. and output0..) from the publisher's golden file."""
    try:
        with np.load(golden, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{golden}: not a .npz with input0.. arrays: {exc}") from None
    inputs = [arrays[f"input{i}"] for i in range(len(arrays)) if f"input{i}" in arrays]
    if not inputs:
        raise ConfigError(f"{golden}: no input0 array")
    if not any(k.startswith("output") for k in arrays):
        for i, out in enumerate(golden_outputs(model_path, inputs)):
            arrays[f"output{i}"] = out
    tmp = dest.with_name(dest.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    write_atomic(dest, tmp.read_bytes())
    tmp.unlink()


def describe(model_path: Path, description: dict[str, Any] | None) -> dict[str, Any]:
    if description is not None:
        return description
    beside = model_path.with_suffix(".json")
    if beside.is_file():
        loaded: dict[str, Any] = json.loads(beside.read_text())
        return loaded
    return {}


def model_io(model_path: Path) -> dict[str, Any]:
    from ..inference import Model

    model = Model(model_path, threads=1)
    return {
        "inputs": [tensor_info(s) for s in model.inputs],
        "outputs": [tensor_info(s) for s in model.outputs],
    }


def publish(
    model_path: Path,
    *,
    name: str,
    version: str,
    key: Path,
    to: Path,
    seq: int | None = None,
    description: dict[str, Any] | None = None,
    golden: Path | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    latency_budget_ms: float | None = None,
    trial_inferences: int | None = None,
    trial_seconds: float | None = None,
    expires_days: float = 365.0,
    now: datetime | None = None,
    extra_files: list[Path] | None = None,
    min_agent: str | None = None,
    evaluation: dict[str, Any] | None = None,
    shadow: dict[str, Any] | None = None,
) -> Release:
    """Write one signed release; returns where and what.

    Refuses, before writing anything, a name or version that is not one plain path component
    and a version that is already published (devices that saw it would never take new bytes
    under the same version string).
    """
    out = release_dir(to, name, version)
    private = load_private(key)
    try:
        head = model_path.read_bytes()[:8]
    except OSError as exc:
        raise ModelError(f"{model_path}: cannot read model: {exc.strerror}") from None
    if head[4:8] != TFLITE_MAGIC:
        raise ModelError(f"{model_path}: not a TFLite flatbuffer (no TFL3 identifier)")
    now = now or datetime.now(timezone.utc)
    model_name = model_path.name
    check_file_name(model_name)
    for extra in extra_files or []:
        check_file_name(extra.name)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, out / model_name)
    files = [file_entry(out / model_name)]
    health: dict[str, Any] = {}
    if golden is not None:
        build_golden(model_path, golden, out / GOLDEN_NAME)
        files.append(file_entry(out / GOLDEN_NAME))
        health["golden"] = {"file": GOLDEN_NAME, "atol": atol, "rtol": rtol}
    for extra in extra_files or []:
        shutil.copyfile(extra, out / extra.name)
        files.append(file_entry(out / extra.name))
    if latency_budget_ms is not None:
        health["latency_budget_ms"] = latency_budget_ms
    if trial_inferences is not None:
        health["trial_inferences"] = trial_inferences
    if trial_seconds is not None:
        health["trial_seconds"] = trial_seconds
    if shadow is not None:
        health["shadow"] = shadow
    io = model_io(model_path)
    doc = {
        "schema": 1,
        "name": name,
        "version": version,
        "seq": seq if seq is not None else int(now.timestamp()),
        "created": now.isoformat().replace("+00:00", "Z"),
        "expires": (now + timedelta(days=expires_days)).isoformat().replace("+00:00", "Z"),
        "files": files,
        "model": {"file": model_name, **io},
        "postprocessing": describe(model_path, description),
        "health": health,
    }
    if min_agent is not None:
        doc["compatibility"] = {"min_agent": min_agent}
    if evaluation is not None:
        doc["evaluation"] = evaluation
    raw = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    manifest = parse_manifest(raw, str(out / MANIFEST_NAME))
    write_atomic(out / MANIFEST_NAME, raw)
    sig = sign(private, raw)
    write_atomic(out / SIGNATURE_NAME, sig)
    fsync_dir(out)
    _point_latest(to / name, version, manifest.seq)
    return Release(out, manifest, json.loads(sig)["keyid"])


MAX_REPORT_BYTES = 16 * 1024 * 1024


def evaluation_from_report(report: Path, model_path: Path) -> dict[str, Any]:
    """The manifest's ``evaluation`` from a ``models compare --report`` file (and its
    ``models quantize`` part when the same file has one). Refused unless the report's model B
    is the file being published (same sha256)."""
    try:
        if report.stat().st_size > MAX_REPORT_BYTES:
            raise ConfigError(f"{report}: report larger than {MAX_REPORT_BYTES >> 20} MiB")
        doc = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{report}: cannot read the report JSON: {exc}") from None
    cmp = doc.get("compare") if isinstance(doc, dict) else None
    if not isinstance(cmp, dict) or not isinstance(cmp.get("b"), dict):
        raise ReportMismatch(
            f"{report}: not a `models compare --report` file (no 'compare' section); nothing "
            "was written"
        )
    sha = file_entry(model_path)["sha256"]
    if cmp["b"].get("sha256") != sha:
        raise ReportMismatch(
            f"{report}: the comparison is about {cmp['b'].get('name', '?')} (sha256 "
            f"{str(cmp['b'].get('sha256'))[:12]}), not {model_path.name} ({sha[:12]}); compare "
            "the file you publish. Nothing was written"
        )
    a, b = cmp.get("a") or {}, cmp["b"]
    out: dict[str, Any] = {
        "summary": str(cmp.get("summary", ""))[:400],
        "reference": {"name": a.get("name"), "sha256": a.get("sha256"), "size": a.get("size")},
        "frames": cmp.get("frames"),
        "source": cmp.get("source"),
        "agreement": cmp.get("agreement") or {},
        "accuracy": cmp.get("accuracy"),
        "ratios": cmp.get("ratios") or {},
        "latency_ms": {"a_p50": a.get("invoke_p50_ms"), "b_p50": b.get("invoke_p50_ms"),
                       "a_p95": a.get("invoke_p95_ms"), "b_p95": b.get("invoke_p95_ms")},
        "backend": b.get("backend"),
    }
    q = doc.get("quantize")
    if isinstance(q, dict) and q.get("size") == b.get("size"):  # the quantize run made B
        out["quantize"] = {k: q.get(k) for k in ("mode", "quantizer", "calibration_frames",
                                                  "source")}
        out["quantize"]["steps"] = [s.get("step") for s in q.get("steps") or []
                                    if isinstance(s, dict)]
    return out


LATEST_NAME = "latest.json"


def release_dir(to: Path, name: str, version: str) -> Path:
    """``<to>/<name>/<version>``, refused unless both are plain names and nothing is published
    there yet."""
    for what, value in (("--name", name), ("--version", version)):
        try:
            names.check(value, what, max_len=64)
        except names.UnsafeName as exc:
            raise UnsafeReleaseName(f"{exc}; nothing was written") from None
    out = to / name / version
    if (out / MANIFEST_NAME).exists() or (out / SIGNATURE_NAME).exists():
        raise ReleaseExists(
            f"{out}: {name} {version} is already published; a republished version needs a new "
            "version string (devices that installed it would never fetch the new bytes). "
            "Nothing was written"
        )
    return out


def _point_latest(model_dir: Path, version: str, seq: int) -> None:
    """``<name>/latest.json`` names the newest release for devices that poll. It is only a
    hint: what it points to is verified like any update (signature, seq, ...)."""
    latest = model_dir / LATEST_NAME
    try:
        current = json.loads(latest.read_text())
        if int(current.get("seq", -1)) > seq:
            return
    except (OSError, ValueError, AttributeError):
        pass
    write_atomic(latest, (json.dumps({"version": version, "seq": seq}) + "\n").encode())


def parse_shadow_option(spec: str) -> dict[str, Any]:
    """``--shadow``: ``on`` (every default) or ``key=value,...`` of ``health.shadow``
    (sample_rate, min_frames, min_agreement, cpu_budget, max_seconds); checked here."""
    from pydantic import ValidationError

    from .manifest import Shadow

    out: dict[str, Any] = {}
    text = spec.strip()
    if text not in ("", "on", "defaults"):
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in Shadow.model_fields:
                raise ConfigError(
                    f"--shadow {part.strip()!r}: expected key=value with key one of "
                    + ", ".join(Shadow.model_fields)
                )
            try:
                out[key] = float(value) if key != "min_frames" else int(value)
            except ValueError:
                raise ConfigError(f"--shadow {key}={value.strip()!r}: not a number") from None
    try:
        Shadow.model_validate(out)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(x) for x in e.get("loc", ()))
        raise ConfigError(f"--shadow {where}: {e.get('msg', 'invalid')}") from None
    return out
