"""CLI: edge-agent infer (issue 2)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import handle_errors, print_json
from .lookup import CONFIG
from .runtime_opts import BACKEND, DELEGATES, THREADS, runtime_options

if TYPE_CHECKING:
    from ..inference import Result


@handle_errors
def infer(
    model: Path = typer.Argument(..., help="Model file (.tflite)"),
    images: list[Path] = typer.Argument(..., help="One or more image files"),
    decoder: str | None = typer.Option(
        None,
        "--decoder",
        help="classification | ssd | yolo | blazeface | segmentation | raw (default: the "
        "model's description JSON, else its metadata, else guessed from its outputs)",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Minimum score kept"
    ),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Results kept at most"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels file: one per line, or `ID name` / `ID: name` lines"
    ),
    description: Path | None = typer.Option(
        None, "--description", help="Description JSON (default: <model>.json beside the model)"
    ),
    threads: int | None = THREADS,
    backend: str | None = BACKEND,
    delegate: list[str] = DELEGATES,
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image"),
) -> None:
    """Run MODEL on each IMAGE; print detections (boxes in image pixels) or classes.

    Example: edge-agent infer models/mobilenet_v2_int8.tflite photo.jpg --top-k 3
    """
    from ..inference import Runner, read_image
    opts = runtime_options(config, threads, backend, delegate)
    runner = Runner.open(
        model,
        threads=opts.threads,
        backend=opts.backend,
        delegates=opts.delegates,
        description=description,
        decoder=decoder,
        threshold=threshold,
        top_k=top_k,
        labels=labels,
    )
    backend_label = runner.model.backend.label
    for image_path in images:
        result, times = runner.run(read_image(image_path))
        latency_ms = round(times.total * 1000.0, 3)
        if as_json:
            print_json(
                {
                    "image": str(image_path),
                    "backend": backend_label,
                    "latency_ms": latency_ms,
                    **result.to_json(),
                }
            )
        else:
            _print_human(
                image_path, result, f"{backend_label}, {runner.model.delegate}", latency_ms
            )


def _print_human(image_path: Path, result: Result, where: str, latency_ms: float) -> None:
    typer.echo(f"{image_path}: {result.summary()}  [{where}, {latency_ms:.1f} ms]")
    for det in result.detections:
        x1, y1, x2, y2 = det.box
        typer.echo(
            f"  {det.label:<12} {det.score:.3f}  box=({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("infer")(infer)
