"""CLI: edge-agent bench (issues 2, 3).

Without ``--source``: the invoke benchmark (edge-agent's Model vs a bare interpreter loop,
:mod:`edge_agent.inference.bench`). With ``--source``: the same model on the same frames three
ways — bare invoke loop, naive sequential loop, the agent's pipeline
(:mod:`edge_agent.bench_pipeline`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..inference.bench import InvokeBench, bench_invoke
from .common import handle_errors, print_json
from .runtime_opts import BACKEND, CONFIG, THREADS, runtime_options


@handle_errors
def bench(
    model: Path = typer.Argument(..., help="Model file (.tflite)"),
    threads: int | None = THREADS,
    runs: int = typer.Option(200, "--runs", min=1, max=100_000, help="Timed invokes per side"),
    warmup: int = typer.Option(10, "--warmup", min=0, max=10_000, help="Untimed invokes first"),
    backend: str | None = BACKEND,
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Invoke latency (p50/p95/p99/mean) and invokes/s: Model vs a bare interpreter loop."""
    opts = runtime_options(config, threads, backend, [])
    report = bench_invoke(
        str(model), threads=opts.threads, runs=runs, warmup=warmup, backend=opts.backend
    )
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
    typer.echo(
        f"  bare interpreter: p50 {j['raw_p50_ms']:.3f} ms  {j['raw_invoke_per_s']:.1f} invokes/s"
        f"  (Model/bare p50 ratio {j['model_vs_raw_p50']:.3f})"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("bench")(bench)
