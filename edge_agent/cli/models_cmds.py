"""CLI group: models inspect/list/activate/rollback/verify/gc (issues 2, 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import handle_errors, print_json

app = typer.Typer(no_args_is_help=True, help="Inspect, list and manage models.")


# -- inspect (issue 2) ------------------------------------------------------------------------
@app.command("inspect")
def inspect_cmd(
    model: Path = typer.Argument(..., help="Model file (.tflite)"),
    threads: int = typer.Option(1, "--threads", min=1, max=64, help="Interpreter threads"),
    backend: str = typer.Option(
        "auto", "--backend", help="auto | litert | tflite_runtime | tensorflow"
    ),
    delegate: list[str] = typer.Option(
        [], "--delegate", help="Delegate library to try (repeatable); CPU is the fallback"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Size, sha256, inputs/outputs with quantisation, operators, backend and delegate."""
    _inspect(model, threads, backend, delegate, as_json)


@handle_errors
def _inspect(model: Path, threads: int, backend: str, delegates: list[str], as_json: bool) -> None:
    from ..inference import Model, load_description
    from ..inference.model import Delegate

    m = Model(model, threads=threads, backend=backend, delegates=[Delegate(d) for d in delegates])
    info = m.summary()
    desc = load_description(model, model=m)
    info["description"] = desc.to_json()
    if as_json:
        print_json(info)
        return
    typer.echo(f"model     {info['path']}")
    typer.echo(f"size      {info['size']} bytes")
    typer.echo(f"sha256    {info['sha256']}")
    typer.echo(f"backend   {info['backend']}  threads {info['threads']}")
    fell = f"  (fell back: {'; '.join(m.delegate_errors)})" if m.delegate_errors else ""
    typer.echo(f"delegate  {info['delegate']}{fell}")
    for label, specs in (("input ", m.inputs), ("output", m.outputs)):
        for spec in specs:
            typer.echo(f"{label}    {spec.describe()}")
    ops = ", ".join(f"{name} x{n}" for name, n in sorted(info["operators"].items()))
    typer.echo(f"operators {info['operator_count']}: {ops}")
    d = desc.decoder
    typer.echo(
        f"decoder   {d.name} (threshold {d.threshold}, resize {desc.resize}, "
        f"normalize {desc.normalize}, color {desc.color})"
    )
