"""CLI: edge-agent infer (issue 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..inference import Runner, read_image
from ..inference.model import Delegate
from .common import handle_errors, print_json


def infer(
    model: Path = typer.Argument(..., help="Model file (.tflite)"),
    images: list[Path] = typer.Argument(..., help="One or more image files"),
    decoder: str | None = typer.Option(
        None,
        "--decoder",
        help="classification | ssd | yolo | blazeface | raw (default: the "
        "model's description JSON, else guessed from its outputs)",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Minimum score kept"
    ),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Results kept at most"),
    threads: int = typer.Option(1, "--threads", min=1, max=64, help="Interpreter threads"),
    backend: str = typer.Option(
        "auto", "--backend", help="auto | litert | tflite_runtime | tensorflow"
    ),
    description: Path | None = typer.Option(
        None, "--description", help="Description JSON (default: <model>.json beside the model)"
    ),
    delegate: list[str] = typer.Option(
        [], "--delegate", help="Delegate library to try first (repeatable); CPU is the fallback"
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image"),
) -> None:
    """Run MODEL on each IMAGE; print detections (boxes in image pixels) or classes."""
    _infer(
        model, images, decoder, threshold, top_k, threads, backend, description, delegate, as_json
    )


@handle_errors
def _infer(
    model: Path,
    images: list[Path],
    decoder: str | None,
    threshold: float | None,
    top_k: int | None,
    threads: int,
    backend: str,
    description: Path | None,
    delegates: list[str],
    as_json: bool,
) -> None:
    runner = Runner.open(
        model,
        threads=threads,
        backend=backend,
        delegates=[Delegate(lib) for lib in delegates],
        description=description,
        decoder=decoder,
        threshold=threshold,
        top_k=top_k,
    )
    backend_label = runner.model.backend.label
    for image_path in images:
        frame = read_image(image_path)
        result, times = runner.run(frame)
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
            continue
        typer.echo(
            f"{image_path}: {result.summary()}  [{backend_label}, {runner.model.delegate}, "
            f"{latency_ms:.1f} ms]"
        )
        for det in result.detections:
            x1, y1, x2, y2 = det.box
            typer.echo(
                f"  {det.label:<12} {det.score:.3f}  box=({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})"
            )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("infer")(infer)
