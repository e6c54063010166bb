"""Preflight: try a downloaded model in a separate process before the agent touches it.

``python -m edge_agent.updates.preflight VERSION_DIR`` loads the model named by the manifest in
that directory, allocates it, checks its real input against the manifest (and the shape the
device feeds), runs the golden inputs and compares with the expected outputs within the
manifest's tolerance, and measures the invoke latency against the budget. It prints one JSON
line. The parent (:func:`run_preflight`) turns a crash (killed by a signal), a hang (timeout)
or a failed check into one :class:`ModelRejected` subclass; the agent's own process never
loads a model that did not pass.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import errors
from .errors import (
    GoldenMismatch,
    InputShapeMismatch,
    ModelRejected,
    NotTFLite,
    PreflightCrashed,
    PreflightLoadFailed,
    PreflightTimeout,
    TooSlow,
)
from .manifest import MANIFEST_NAME, Manifest, parse_manifest

TFLITE_MAGIC = b"TFL3"
MAX_REPORT_BYTES = 64 * 1024


@dataclass(frozen=True)
class PreflightReport:
    p50_ms: float
    p95_ms: float
    golden_max_err: float | None
    backend: str


def _reason_classes() -> dict[str, type[errors.UpdateError]]:
    out: dict[str, type[errors.UpdateError]] = {}
    stack: list[type[errors.UpdateError]] = [errors.UpdateError]
    while stack:
        c = stack.pop()
        out[c.reason] = c
        stack.extend(c.__subclasses__())
    return out


# -- the child ------------------------------------------------------------------------------
def check_model(
    vdir: Path, manifest: Manifest, *, threads: int, runs: int, input_shape: list[int] | None
) -> PreflightReport:
    """Everything preflight checks, in this process (the child runs it)."""
    from ..inference import Model

    path = vdir / manifest.model.file
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != TFLITE_MAGIC:
        raise NotTFLite(f"{path.name}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = Model(path, threads=threads)
    except Exception as exc:  # the runtime raises assorted types for a bad model
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightLoadFailed(f"{path.name}: the interpreter refused it: {msg}") from None
    real = [int(x) for x in model.inputs[0].shape]
    if real != list(manifest.input_shape):
        raise InputShapeMismatch(
            f"{path.name}: input shape {real} differs from the manifest's {manifest.input_shape}"
        )
    if input_shape is not None and real != list(input_shape):
        raise InputShapeMismatch(
            f"{path.name}: input shape {real} differs from the {list(input_shape)} "
            "this device feeds"
        )
    max_err = None
    golden = manifest.health.golden
    if golden is not None:
        with np.load(vdir / golden.file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        i = 0
        while f"input{i}" in arrays:
            view = model.input_view(i)
            view[...] = arrays[f"input{i}"].astype(view.dtype).reshape(view.shape)
            del view
            i += 1
        model.invoke()
        max_err = 0.0
        for j, got in enumerate(model.outputs_all()):
            want = arrays.get(f"output{j}")
            if want is None:
                continue
            g, w = got.astype(np.float64), want.astype(np.float64)
            if g.shape != w.shape:
                raise GoldenMismatch(f"output {j}: shape {g.shape} differs from golden {w.shape}")
            err = float(np.max(np.abs(g - w))) if g.size else 0.0
            max_err = max(max_err, err)
            if not np.allclose(g, w, atol=golden.atol, rtol=golden.rtol, equal_nan=False):
                raise GoldenMismatch(
                    f"output {j} differs from the golden output by up to {err:.4g} "
                    f"(tolerance atol={golden.atol} rtol={golden.rtol})"
                )
    model.warmup(2)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.invoke()
        times.append((time.perf_counter() - t0) * 1000)
    p50, p95 = float(np.percentile(times, 50)), float(np.percentile(times, 95))
    budget = manifest.health.latency_budget_ms
    if budget is not None and p50 > budget:
        raise TooSlow(
            f"{path.name}: median invoke {p50:.2f} ms is over the {budget:g} ms budget "
            f"({runs} runs, {threads} thread(s))"
        )
    return PreflightReport(p50, p95, max_err, getattr(model.backend, "name", "?"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_agent.updates.preflight")
    ap.add_argument("vdir", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--input-shape", default="")
    a = ap.parse_args(argv)
    shape = [int(x) for x in a.input_shape.split(",")] if a.input_shape else None
    out: dict[str, Any]
    try:
        raw = (a.vdir / MANIFEST_NAME).read_bytes()
        manifest = parse_manifest(raw, str(a.vdir / MANIFEST_NAME))
        rep = check_model(a.vdir, manifest, threads=a.threads, runs=a.runs, input_shape=shape)
        out = {"ok": True, **rep.__dict__}
    except errors.UpdateError as exc:
        out = {"ok": False, "reason": exc.reason, "detail": str(exc)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0 if out["ok"] else 1


# -- the parent -----------------------------------------------------------------------------
def run_preflight(
    vdir: Path,
    *,
    timeout_s: float,
    threads: int = 1,
    runs: int = 20,
    input_shape: list[int] | None = None,
) -> PreflightReport:
    """Run the preflight child; raise a :class:`ModelRejected` subclass if it does not pass."""
    pkg_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "edge_agent.updates.preflight", str(vdir)]
    cmd += ["--threads", str(threads), "--runs", str(runs)]
    if input_shape:
        cmd += ["--input-shape", ",".join(str(x) for x in input_shape)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout_s, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise PreflightTimeout(
            f"preflight of {vdir.name} did not finish within {timeout_s:g} s (hang); "
            "[updates] preflight_timeout_s"
        ) from None
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise PreflightCrashed(
            f"the model crashed the interpreter in preflight ({sig}); the agent was not touched"
        )
    lines = proc.stdout[-MAX_REPORT_BYTES:].decode(errors="replace").strip().splitlines()
    try:
        rep = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = proc.stderr[-300:].decode(errors="replace").strip().replace("\n", " | ")
        raise PreflightCrashed(
            f"preflight exited {proc.returncode} without a report: {tail or 'no output'}"
        ) from None
    if rep.get("ok"):
        return PreflightReport(
            rep["p50_ms"], rep["p95_ms"], rep.get("golden_max_err"), rep.get("backend", "?")
        )
    cls = _reason_classes().get(rep.get("reason", ""), ModelRejected)
    raise cls(rep.get("detail", "preflight failed"))


if __name__ == "__main__":
    sys.exit(main())
