"""Invoke benchmark: edge-agent's :class:`Model` against a bare interpreter loop, side by side.

Both run the same file on the same backend with the same thread count, in interleaved blocks
(bare, model, bare, model, ...) so that machine noise hits both alike. Pure measurement: the
CLI formats it, ``benchmarks/model_overhead.py`` repeats it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model import DelegateChain, Model
from .native import quiet_native_stderr

MAX_RUNS = 100_000


@dataclass(frozen=True)
class InvokeBench:
    backend: str
    delegate: str
    threads: int
    runs: int
    model_ms: list[float]
    raw_ms: list[float]
    engine: dict[str, Any] = field(default_factory=lambda: {"engine": "interpreter"})

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(values), q)) if values else float("nan")

    @property
    def ratio(self) -> float:
        """Median per-invoke time through Model / through the bare loop (1.0 = no overhead)."""
        return self._pct(self.model_ms, 50) / self._pct(self.raw_ms, 50)

    def to_json(self) -> dict[str, Any]:
        model_total = sum(self.model_ms) / 1000.0
        raw_total = sum(self.raw_ms) / 1000.0
        return {
            "backend": self.backend,
            "delegate": self.delegate,
            "threads": self.threads,
            "runs": self.runs,
            "p50_ms": round(self._pct(self.model_ms, 50), 4),
            "p95_ms": round(self._pct(self.model_ms, 95), 4),
            "p99_ms": round(self._pct(self.model_ms, 99), 4),
            "mean_ms": round(float(np.mean(self.model_ms)), 4),
            "model_invoke_per_s": round(len(self.model_ms) / model_total, 2),
            "raw_p50_ms": round(self._pct(self.raw_ms, 50), 4),
            "raw_invoke_per_s": round(len(self.raw_ms) / raw_total, 2),
            "model_vs_raw_p50": round(self.ratio, 4),
            **self.engine,
        }


def bare_interpreter(model: Model) -> Any:
    """A plain interpreter of the same backend, file and threads, inputs at zero point."""
    kwargs: dict[str, Any] = {"model_path": str(model.path), "num_threads": model.threads}
    with quiet_native_stderr():
        interp = model.backend.Interpreter(**kwargs)
        interp.allocate_tensors()
    for d in interp.get_input_details():
        zp = d["quantization"][1] if d["quantization"][0] else 0
        interp.set_tensor(d["index"], np.full(d["shape"], zp, dtype=d["dtype"]))
    return interp


def bench_invoke(
    path: str,
    *,
    threads: int = 1,
    runs: int = 200,
    warmup: int = 10,
    block: int = 10,
    backend: str = "auto",
    delegates: DelegateChain = (),
    accelerators: Sequence[str] = (),
) -> InvokeBench:
    """Time ``runs`` invokes through :class:`Model` and ``runs`` through a bare interpreter
    (with ``accelerators``: LiteRT's CompiledModel against the Interpreter, side by side)."""
    runs = max(1, min(int(runs), MAX_RUNS))
    model = Model(
        path, threads=threads, backend=backend, delegates=delegates, accelerators=accelerators
    )
    model.warmup(warmup)
    bare = bare_interpreter(model)
    for _ in range(warmup):
        bare.invoke()
    clock = time.perf_counter
    model_ms: list[float] = []
    raw_ms: list[float] = []
    bare_invoke = bare.invoke
    while len(model_ms) < runs:
        n = min(block, runs - len(model_ms))
        for _ in range(n):
            t0 = clock()
            bare_invoke()
            raw_ms.append((clock() - t0) * 1000.0)
        for _ in range(n):
            t0 = clock()
            model.invoke()
            model_ms.append((clock() - t0) * 1000.0)
    engine = model.engine.summary() if model.engine is not None else {"engine": "interpreter"}
    return InvokeBench(
        model.backend.label, model.delegate, threads, runs, model_ms, raw_ms, engine
    )
