"""``models quantize`` and ``models compare`` (issue 14): optimise a model, then show honestly
what it cost and what it gained."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from .common import handle_errors, print_json

SOURCE_HELP = "video file | image folder | one image | demo | synthetic | camera index | URL"


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; None (no bar) otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        f"[bold]{label}[/bold]", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(file=sys.__stderr__), auto_refresh=False,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        bar.refresh()

    with bar:
        yield update


def quantize_cmd(
    model: Path = typer.Argument(..., help="Float model (.tflite) to quantise"),
    calibrate: str | None = typer.Option(
        None, "--calibrate", help=f"Calibration frames: {SOURCE_HELP}"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Quantised model to write (+ its .json)"),
    mode: str = typer.Option(
        "int8", "--mode", help="int8 | int8-float-io | dynamic | fp16 | int16x8"
    ),
    frames: int = typer.Option(100, "--frames", min=1, max=100_000, help="Calibration frames"),
    input_type: str | None = typer.Option(
        None, "--input-type", help="--mode int8: int8 (default) | uint8"
    ),
    output_type: str | None = typer.Option(
        None, "--output-type", help="--mode int8: int8 (default) | float"
    ),
    description: Path | None = typer.Option(
        None, "--description", help="Description JSON of the float model [default: beside it]"
    ),
    threads: int = typer.Option(1, "--threads", min=1, max=64, help="Calibration threads"),
    report: Path | None = typer.Option(None, "--report", help="Write the JSON report here"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
) -> None:
    """Quantise a float model, calibrated on frames through the agent's own preprocessing."""
    from ..atomicfile import write_json_atomic
    from ..inference.description import read_description
    from ..modelops.quantize import QuantizeOptions, quantize_model

    desc = read_description(description) if description is not None else None
    opts = QuantizeOptions(mode=mode, frames=frames, input_type=input_type,
                           output_type=output_type, threads=threads)
    with progress_bar("calibrating", not as_json) as update:
        result = quantize_model(model, out, calibrate, opts, description=desc, progress=update)
    data = result.to_json()
    if report is not None:
        write_json_atomic(report, {"quantize": data})
    if as_json:
        print_json(data)
        return
    typer.echo(f"wrote {result.out} ({result.mode}, {result.size} bytes, "
               f"{data['size_ratio']}x smaller than {result.float_size}) "
               f"in {result.seconds['total']:.1f} s with {result.quantizer}")
    if result.frames:
        skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
        typer.echo(f"calibrated on {result.frames} frames from {result.source}{skipped}")
    for step in result.steps:
        typer.echo(f"applied   {step.name}: {step.detail}")
    for name, (lo, hi) in result.pinned.items():
        typer.echo(f"range     {name}: [{lo:g}, {hi:g}]")
    for label, specs in (("input ", result.inputs), ("output", result.outputs)):
        for s in specs:
            q = s.get("quantization") or {}
            qtext = f" scale {q['scale']:.6g} zero point {q['zero_point']}" if q else ""
            typer.echo(f"{label}    {s['name']} {s['dtype']} {s['shape']}{qtext}")


def register(app: typer.Typer) -> None:
    app.command("quantize")(handle_errors(quantize_cmd))
