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


def write_report(path: Path, key: str, doc: dict) -> None:
    """Put ``doc`` under ``key`` in the report file, keeping the other command's part (quantize
    and compare may share one file; `registry publish --report` reads both)."""
    import json

    from ..common.atomicfile import write_json_atomic

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}
    merged = old if isinstance(old, dict) else {}
    merged[key] = doc
    write_json_atomic(path, merged)


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
    """Quantise a float model, calibrated on frames through the agent's own preprocessing.

    Example: edge-agent models quantize float.tflite --calibrate frames/ --out int8.tflite
    """
    from ..inference.description import read_description
    from ..modelops.quantize import QuantizeOptions, quantize_model

    desc = read_description(description) if description is not None else None
    opts = QuantizeOptions(mode=mode, frames=frames, input_type=input_type,
                           output_type=output_type, threads=threads)
    with progress_bar("calibrating", not as_json) as update:
        result = quantize_model(model, out, calibrate, opts, description=desc, progress=update)
    data = result.to_json()
    if report is not None:
        write_report(report, "quantize", data)
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


def compare_cmd(
    model_a: Path = typer.Argument(..., help="Reference model A (e.g. the float model)"),
    model_b: Path = typer.Argument(..., help="Candidate model B (e.g. its int8 version)"),
    data: str | None = typer.Option(None, "--data", help=f"Frames: {SOURCE_HELP}"),
    truth: Path | None = typer.Option(
        None, "--truth", help="Ground truth: a folder per class, or COCO JSON (images in --data)"
    ),
    frames: int | None = typer.Option(
        None, "--frames", min=1, max=100_000,
        help="Frames to compare [default: 100 of a source, every image of --truth]",
    ),
    threads: int = typer.Option(1, "--threads", min=1, max=64, help="Interpreter threads"),
    runs: int = typer.Option(200, "--runs", min=1, max=100_000, help="Timed invokes per model"),
    html: Path | None = typer.Option(None, "--html", help="Write an offline HTML report here"),
    report: Path | None = typer.Option(None, "--report", help="Write the JSON report here"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
) -> None:
    """A/B on the same frames: size, load, latency (interleaved), peak RSS, agreement of B with
    A (tensors and decoded results), accuracy against ground truth, and the owner's line.

    Example: edge-agent models compare float.tflite int8.tflite --data frames/ --html ab.html
    """
    from ..modelops.compare import CompareOptions, compare_models

    opts = CompareOptions(frames=frames, threads=threads, runs=runs)
    with progress_bar("comparing", not as_json) as update:
        cmp = compare_models(model_a, model_b, source=data, truth_path=truth, options=opts,
                             progress=update)
    doc = cmp.to_json()
    if report is not None:
        write_report(report, "compare", doc)
    if html is not None:
        from ..modelops.report_html import write_html

        write_html(cmp, html)
    if as_json:
        print_json(doc)
        return
    for line in render_comparison(doc):
        typer.echo(line)
    if html is not None:
        typer.echo(f"report    {html}")


def _fmt(v: object, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}{unit}" if abs(v) < 1000 else f"{v:.0f}{unit}"
    return f"{v}{unit}"


def render_comparison(doc: dict) -> list[str]:
    a, b, r = doc["a"], doc["b"], doc["ratios"]
    rows = [
        ("size", _fmt(a["size"], " B"), _fmt(b["size"], " B"), r["size"]),
        ("load", _fmt(a["load_ms"], " ms"), _fmt(b["load_ms"], " ms"), r["load"]),
        ("invoke p50", _fmt(a["invoke_p50_ms"], " ms"), _fmt(b["invoke_p50_ms"], " ms"),
         r["speed_p50"]),
        ("invoke p95", _fmt(a["invoke_p95_ms"], " ms"), _fmt(b["invoke_p95_ms"], " ms"),
         r["speed_p95"]),
        ("model RSS", _fmt(a["model_rss_kb"], " KiB"), _fmt(b["model_rss_kb"], " KiB"),
         r["model_rss"]),
    ]
    w = max(len(a["name"]), len(b["name"]), 14) + 4
    lines = [f"{'':<12}{'A ' + a['name']:<{w}}{'B ' + b['name']:<{w}}A/B"]
    for label, va, vb, ratio in rows:
        lines.append(f"{label:<12}{va:<{w}}{vb:<{w}}{_fmt(ratio, 'x')}")
    g = doc["agreement"]
    if g["kind"] == "detection":
        lines.append(
            f"agreement {g['frames']} frames: B found {g['matched']} of A's {g['detections_a']} "
            f"detections (recall {g['recall']:.3f}), {g['detections_b']} in all (precision "
            f"{g['precision']:.3f}), IoU >= {g['iou_match']}; mean IoU {_fmt(g['mean_iou'])}, "
            f"score shift {_fmt(g['score_shift_mean'])}")
    elif g["kind"] == "classification":
        lines.append(f"agreement {g['frames']} frames: top-1 {100 * g['top1_agreement']:.1f} %, "
                     f"top-5 {100 * g['top5_agreement']:.1f} %")
    for t in doc["tensors"]:
        lines.append(f"tensor    {t['name']}: cosine {_fmt(t['cosine_mean'])} (min "
                     f"{_fmt(t['cosine_min'])}), max abs error {_fmt(t['max_abs_error'])}")
    acc = doc["accuracy"]
    if acc is not None:
        key = "top1" if acc["metric"] == "top-1" else "map50"
        lines.append(f"truth     {acc['metric']}: A {acc['a'][key]:.2f} %, B {acc['b'][key]:.2f} %"
                     f" ({acc['delta_points']:+.2f} points) on {acc['a']['images']} images")
    lines.append(doc["summary"])
    return lines


def register(app: typer.Typer) -> None:
    app.command("quantize")(handle_errors(quantize_cmd))
    app.command("compare")(handle_errors(compare_cmd))
