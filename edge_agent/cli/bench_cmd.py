"""CLI: edge-agent bench (issues 2, 3).

Without ``--source``: the invoke benchmark (edge-agent's Model vs a bare interpreter loop,
:mod:`edge_agent.inference.bench`). With ``--source``: the same model on the same frames three
ways — bare invoke loop, naive sequential loop, the agent's pipeline
(:mod:`edge_agent.tools.bench_pipeline`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import handle_errors, print_json
from .lookup import CONFIG
from .runtime_opts import ACCELERATORS, BACKEND, THREADS, runtime_options

if TYPE_CHECKING:
    from ..inference.bench import InvokeBench


@handle_errors
def bench(
    model: Path = typer.Argument(..., help="Model file (.tflite)"),
    threads: int | None = THREADS,
    runs: int = typer.Option(200, "--runs", min=1, max=100_000, help="Timed invokes per side"),
    warmup: int = typer.Option(10, "--warmup", min=0, max=10_000, help="Untimed invokes first"),
    backend: str | None = BACKEND,
    accelerator: list[str] = ACCELERATORS,
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
    source: str | None = typer.Option(
        None,
        "--source",
        help="Frames for the pipeline bench: video file, image folder, camera, URL, synthetic",
    ),
    frames: int = typer.Option(
        300, "--frames", min=10, max=100_000, help="Frames per way (with --source)"
    ),
) -> None:
    """Invoke latency and invokes/s (Model vs bare loop); with --source: raw vs naive vs pipeline
    fps and end-to-end latency on the same frames.

    Example: edge-agent bench models/digits_int8.tflite --runs 100 --json
    """
    _bench(model, source, threads, backend, config, runs, warmup, frames, as_json, accelerator)


def _bench(
    model: Path,
    source: str | None,
    threads: int | None,
    backend: str | None,
    config: Path | None,
    runs: int,
    warmup: int,
    frames: int,
    as_json: bool,
    accelerator: list[str] | None = None,
) -> None:
    opts = runtime_options(config, threads, backend, [], accelerator)  # flags over [model]
    if source is not None:
        _bench_pipeline(model, source, opts.threads, frames, opts.backend, as_json)
    else:
        _bench_invoke(model, opts.threads, runs, warmup, opts.backend, as_json, opts.accelerators)


@handle_errors
def _bench_pipeline(
    model: Path, source: str, threads: int, frames: int, backend: str, as_json: bool
) -> None:
    from ..tools.bench_pipeline import bench_pipeline

    report = bench_pipeline(str(model), source, threads=threads, frames=frames, backend=backend)
    j = report.to_json()
    if as_json:
        print_json({"model": str(model), "source": source, **j})
        return
    typer.echo(f"{model}  on {source}  threads {j['threads']}  frames {j['frames']}")
    typer.echo(
        f"  raw invoke loop {j['raw_fps']:.1f} fps | naive loop {j['naive_fps']:.1f} fps | "
        f"pipeline {j['pipeline_fps']:.1f} fps"
    )
    typer.echo(
        f"  pipeline/raw {j['pipeline_fps'] / j['raw_fps']:.3f}  "
        f"pipeline/naive {j['pipeline_fps'] / j['naive_fps']:.3f}  "
        f"(interpreter busy {j['invoke_busy']:.3f}, waiting for input {j['invoke_starved']:.3f})"
    )
    typer.echo(
        f"  e2e p50 {j['e2e_p50_ms']:.2f} ms  p95 {j['e2e_p95_ms']:.2f}  "
        f"invoke p50 {j['invoke_p50_ms']:.2f} (bare {j['raw_invoke_p50_ms']:.2f})  "
        f"rss {j['rss_mb']:.0f} MB"
    )


@handle_errors
def _bench_invoke(
    model: Path, threads: int, runs: int, warmup: int, backend: str, as_json: bool,
    accelerators: list[str] | None = None,
) -> None:
    from ..inference.bench import bench_invoke

    report = bench_invoke(str(model), threads=threads, runs=runs, warmup=warmup, backend=backend,
                          accelerators=accelerators or ())
    if as_json:
        print_json({"model": str(model), **report.to_json()})
    else:
        _print_invoke(model, report)


def _print_invoke(model: Path, report: InvokeBench) -> None:
    j = report.to_json()
    typer.echo(
        f"{model}  backend {j['backend']}  delegate {j['delegate']}  threads {j['threads']}  "
        f"runs {j['runs']}"
    )
    typer.echo(
        f"  edge-agent Model: p50 {j['p50_ms']:.3f} ms  p95 {j['p95_ms']:.3f}  "
        f"p99 {j['p99_ms']:.3f}  mean {j['mean_ms']:.3f}  {j['model_invoke_per_s']:.1f} invokes/s"
    )
    if j.get("engine") == "compiled_model":
        typer.echo(f"  (CompiledModel on {j['accelerator']}, fully accelerated "
                   f"{j['fully_accelerated']}; the bare loop is the Interpreter)")
    typer.echo(
        f"  bare interpreter: p50 {j['raw_p50_ms']:.3f} ms  {j['raw_invoke_per_s']:.1f} invokes/s"
        f"  (Model/bare p50 ratio {j['model_vs_raw_p50']:.3f})"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("bench")(bench)
