"""CLI group: models inspect/list/activate/rollback/verify/gc (issues 2, 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .common import JSON_OPTION, handle_errors, load, print_json
from .lookup import CONFIG
from .runtime_opts import ACCELERATORS, BACKEND, DELEGATES, THREADS, runtime_options

app = typer.Typer(no_args_is_help=True, help="Inspect, list and manage models.")


# -- inspect (issue 2) ------------------------------------------------------------------------
@app.command("inspect")
@handle_errors
def inspect_cmd(
    model: Path = typer.Argument(..., help="Model file (.tflite)"),
    threads: int | None = THREADS,
    backend: str | None = BACKEND,
    delegate: list[str] = DELEGATES,
    accelerator: list[str] = ACCELERATORS,
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Size, sha256, inputs/outputs with quantisation, operators, backend and delegate.

    Example: edge-agent models inspect models/blazeface_int8.tflite
    """
    from ..inference import Model, load_description

    opts = runtime_options(config, threads, backend, delegate, accelerator)
    m = Model(model, threads=opts.threads, backend=opts.backend, delegates=opts.delegates,
              accelerators=opts.accelerators)
    from ..updates.store import read_evaluation

    info = m.summary()
    desc = load_description(model, model=m)
    info["description"] = desc.to_json()
    evaluation = read_evaluation(model.parent, model.name, m.sha256)
    info["evaluation"] = evaluation
    info["origin"] = desc.origin.to_json()
    if as_json:
        print_json(info)
        return
    typer.echo(f"model     {info['path']}")
    typer.echo(f"size      {info['size']} bytes")
    typer.echo(f"sha256    {info['sha256']}")
    typer.echo(f"backend   {info['backend']}  threads {info['threads']}")
    fell = f"  (fell back: {'; '.join(m.delegate_errors)})" if m.delegate_errors else ""
    typer.echo(f"delegate  {info['delegate']}{fell}")
    if m.engine is not None:
        errs = f"  (fell back: {'; '.join(m.engine.errors)})" if m.engine.errors else ""
        typer.echo(f"engine    CompiledModel on {m.engine.accelerator}, fully accelerated "
                   f"{'yes' if m.engine.fully_accelerated else 'no'}{errs}")
    for label, specs in (("input ", m.inputs), ("output", m.outputs)):
        for spec in specs:
            typer.echo(f"{label}    {spec.describe()}")
    ops = ", ".join(f"{name} x{n}" for name, n in sorted(info["operators"].items()))
    typer.echo(f"operators {info['operator_count']}: {ops}")
    _echo_metadata(desc.origin)
    _echo_description(desc)
    if evaluation is not None:
        typer.echo(f"evaluated {evaluation['summary']}")


def _echo_metadata(origin: Any) -> None:
    meta = origin.metadata
    if origin.metadata_error:
        typer.echo(f"metadata  unreadable: {origin.metadata_error}")
    if meta is None:
        if not origin.metadata_error:
            typer.echo("metadata  none (no TFLITE_METADATA buffer)")
        return
    typer.echo(f"metadata  {meta.name or '(no name)'} version {meta.version or '-'}, "
               f"author {meta.author or '-'}, licence {meta.license or '-'}")
    for kind, tensors in (("input", meta.inputs), ("output", meta.outputs)):
        for t in tensors:
            parts = [t.content or "-"]
            if t.color_space:
                parts.append(t.color_space)
            if t.mean:
                parts.append(f"mean {list(t.mean)} std {list(t.std)}")
            if t.box_type:
                parts.append(f"boxes {t.box_type} {t.box_coordinates} index {list(t.box_index)}")
            parts += [f"{f.name} ({f.type})" for f in t.files]
            typer.echo(f"  {kind:<6}  {t.name or '?'}: {', '.join(parts)}")
    if meta.archive:
        typer.echo(f"  files   {', '.join(meta.archive)}")


def _echo_description(desc: Any) -> None:
    src = desc.origin.sources
    d = desc.decoder

    def row(key: str, value: Any) -> None:
        typer.echo(f"  {key:<13} {value!s:<28} ({src.get(key, 'default')})")

    fam = f"  family {desc.origin.family}" if desc.origin.family else ""
    typer.echo(f"settings{fam}")
    row("color", desc.color)
    row("resize", desc.resize)
    row("sampling", desc.sampling)
    norm = desc.normalize
    if norm == "meanstd":
        norm = f"meanstd {desc.mean}/{desc.std}"
    row("normalize", norm)
    row("decoder", d.name)
    row("threshold", d.threshold)
    row("top_k", d.top_k)
    row("iou_threshold", d.iou_threshold)
    shown = ", ".join(n or "?" for n in d.labels[:4]) + (" ..." if len(d.labels) > 4 else "")
    row("labels", f"{len(d.labels)}: {shown}" if d.labels else "none (class ids)")
    if d.options:
        row("options", d.options)
    typer.echo(f"input rule  {desc.origin.input_rule}")


# -- the on-device model store (issue 5) ------------------------------------------------------
ConfigOption = CONFIG  # its [device] state_dir holds the store
RESTART_HINT = "restart the agent to load it (the running agent takes MQTT `rollback`/`update`)"


def _refuse_if_running(cfg: Any, what: str) -> None:
    """The running agent owns the store: refuse and say how to do it instead."""
    from ..errors import AgentNotRunning, ControlError
    from ..ops.control import request
    from ..updates.errors import StoreInUse

    try:
        status = request(cfg.control_socket, "status")
    except (AgentNotRunning, ControlError):
        return
    pid = status.get("pid", "?") if isinstance(status, dict) else "?"
    live = ("roll back live with `edge-agent fleet cmd DEVICE rollback` (or push the version "
            "with `fleet push-update`)" if what == "rollback" else
            "install it live with `edge-agent fleet push-update DEVICE --model M --version V`")
    raise StoreInUse(
        f"the agent is running on this store (pid {pid}): {what} here would change the store "
        f"behind it; {live}, or stop the agent (`systemctl stop edge-agent`), run `edge-agent "
        f"models {what}` and start it again"
    )


def _store(config: Path | None) -> Any:
    from ..updates.store import Store
    cfg = load(config)
    return cfg, Store.for_config(cfg)


def _rows(store: Any) -> list[dict[str, Any]]:
    from ..updates.errors import CorruptModel
    from ..updates.store import read_evaluation

    s = store.load()
    roles = {}
    for role, e in (("active", s.active), ("previous", s.previous)):
        if e is not None:
            roles[e.id] = role
    if s.trial is not None:
        roles[s.trial.entry.id] = f"trial ({s.trial.attempts_left} attempts left)"
    rows = []
    for e in store.installed():
        try:
            store.verify(e)
            ok = True
        except CorruptModel:
            ok = False
        rows.append(
            {
                "id": e.id,
                "name": e.name,
                "version": e.version,
                "seq": e.seq,
                "sha256": e.sha256,
                "size": e.size,
                "role": roles.get(e.id, "bad" if e.id in s.bad else ""),
                "verified": ok,
                "evaluation": read_evaluation(store.dir_of(e)),
            }
        )
    return rows


@app.command("list")
@handle_errors
def list_cmd(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Installed model versions with their role (active, previous, trial, bad).

    Example: edge-agent models list --json
    """
    _cfg, store = _store(config)
    rows = _rows(store)
    s = store.load()
    dep = s.deployment
    if as_json:
        print_json({"versions": rows, "deployment": dep.__dict__ if dep else None})
        return
    if not rows:
        typer.echo("no model installed by updates; the agent runs the configured/factory model")
    for r in rows:
        flag = "" if r["verified"] else "  SHA256 MISMATCH"
        typer.echo(f"{r['name']:<16} {r['version']:<12} seq {r['seq']:<8} "
                   f"{r['sha256'][:12]}  {r['role']}{flag}")
        if r["evaluation"]:
            typer.echo(f"    evaluated: {r['evaluation']['summary']}")
    if dep is not None:
        typer.echo(f"last update {dep.id}: {dep.model} {dep.version} {dep.state}"
                   + (f" ({dep.reason}: {dep.detail})" if dep.reason else ""))


@app.command("activate")
@handle_errors
def activate_cmd(
    version: str = typer.Argument(..., help="Installed version to make active"),
    name: str | None = typer.Option(None, "--name", help="Model name (if several)"),
    config: Path | None = ConfigOption,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make an installed version the active model (the current one becomes previous).

    Example: edge-agent models activate 1.4.0 --name digits
    """
    from ..updates.state import activate

    cfg, store = _store(config)
    _refuse_if_running(cfg, "activate")
    e = store.find(name, version)
    store.verify(e)
    store.save(activate(store.load(), e))
    _activated(e, as_json)


@app.command("rollback")
@handle_errors
def rollback_cmd(config: Path | None = ConfigOption, as_json: bool = JSON_OPTION) -> None:
    """Make the previous model active again.

    Example: edge-agent models rollback
    """
    from ..updates.errors import NoPreviousVersion
    from ..updates.state import rollback

    cfg, store = _store(config)
    _refuse_if_running(cfg, "rollback")
    s = store.load()
    if s.previous is None:
        raise NoPreviousVersion("no previous model to roll back to (see `edge-agent models list`)")
    store.verify(s.previous)
    store.save(rollback(s))
    _activated(s.previous, as_json)


def _activated(e: Any, as_json: bool) -> None:
    if as_json:
        print_json({"active": {"name": e.name, "version": e.version, "id": e.id},
                    "restart_needed": True})
    else:
        typer.echo(f"active: {e.name} {e.version}; {RESTART_HINT}")


@app.command("verify")
@handle_errors
def verify_cmd(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Check every installed model's sha256; exit 1 if one does not match.

    Example: edge-agent models verify
    """
    _cfg, store = _store(config)
    rows = _rows(store)
    bad = [r for r in rows if not r["verified"]]
    if as_json:
        print_json({"ok": not bad, "versions": rows})
    else:
        for r in rows:
            typer.echo(f"{'ok ' if r['verified'] else 'BAD'} {r['id']} {r['role']}")
        if bad:
            typer.echo(
                f"{len(bad)} model(s) no longer match their sha256; the agent falls back to the "
                "previous/factory model at start", err=True)
    if bad:
        raise typer.Exit(1)


@app.command("gc")
@handle_errors
def gc_cmd(
    keep: int | None = typer.Option(None, "--keep", min=1, help="Versions to keep per model"),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Delete old versions (keeps the newest K, and always active, previous and trial).

    Example: edge-agent models gc --keep 2
    """
    cfg, store = _store(config)
    removed = store.gc(keep or cfg.updates.keep_versions, store.load())
    if as_json:
        print_json({"removed": removed})
    else:
        typer.echo(f"removed {len(removed)} version(s)" + (": " + ", ".join(removed)
                                                           if removed else ""))


# -- quantize / compare (issue 14) ------------------------------------------------------------
from . import modelops_cmds  # noqa: E402 - registers on this app

modelops_cmds.register(app)
