"""CLI group: registry keygen/publish (issue 5) — the central side of model updates."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ConfigError
from .common import JSON_OPTION, handle_errors, print_json

app = typer.Typer(no_args_is_help=True, help="Make release keys and publish signed models.")


@app.command()
@handle_errors
def keygen(
    out: Path = typer.Argument(..., help="Private key file to write (mode 0600); OUT.pub too"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make an Ed25519 release key pair. Put OUT.pub in the devices' [updates] trusted_keys.

    Example: edge-agent registry keygen release.key
    """
    from ..updates.keys import keygen as make

    priv, pub, kid = make(out)
    if as_json:
        print_json({"private_key": str(priv), "public_key": str(pub), "keyid": kid})
        return
    typer.echo(f"private key {priv} (keep it secret), public key {pub}, key id {kid}")


@app.command()
@handle_errors
def publish(
    model: Path = typer.Argument(..., help="The .tflite file to release"),
    name: str = typer.Option(..., "--name", help="Model name (the device's update target)"),
    version: str = typer.Option(..., "--version", help="Version string, e.g. 1.4.0"),
    key: Path = typer.Option(..., "--key", help="Private release key (registry keygen)"),
    to: Path = typer.Option(..., "--to", help="Registry directory served over HTTP(S)"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels file: one per line, or `ID name` / `ID: name` lines"
    ),
    decoder: str | None = typer.Option(None, "--decoder", help="Decoder name (classification…)"),
    description: Path | None = typer.Option(
        None, "--description", help="Model description JSON (default: <model>.json beside it)"
    ),
    golden: Path | None = typer.Option(
        None, "--golden", help=".npz with input0.. (and output0..; computed if absent)"
    ),
    atol: float = typer.Option(0.0, "--atol", help="Golden absolute tolerance"),
    rtol: float = typer.Option(0.0, "--rtol", help="Golden relative tolerance"),
    latency_budget_ms: float | None = typer.Option(
        None, "--latency-budget-ms", help="The device refuses the model before installing it "
        "when its median invoke there is slower (ms) [default: no budget]"),
    trial_inferences: int | None = typer.Option(
        None, "--trial-inferences", min=1, help="Inferences the new model must run in its "
        "trial before the device commits it [default: the device's updates.trial_inferences]"),
    trial_seconds: float | None = typer.Option(
        None, "--trial-seconds", min=0, help="Trial window (s): the trial also passes when it "
        "ends with enough inferences [default: the device's updates.trial_seconds]"),
    seq: int | None = typer.Option(None, "--seq", help="Monotonic sequence (default: now)"),
    expires_days: float = typer.Option(365.0, "--expires", help="Days until the manifest expires"),
    min_agent: str | None = typer.Option(
        None, "--min-agent", help="Oldest edge-agent version that may install it"
    ),
    report: Path | None = typer.Option(
        None, "--report", help="`models compare --report` file about this model: its summary "
        "goes into the signed manifest (evaluation)"
    ),
    shadow: str | None = typer.Option(
        None, "--shadow", help="Shadow evaluation before the swap: 'on' (defaults) or "
        "key=value,... of sample_rate, min_frames, min_agreement, cpu_budget, max_seconds "
        "(agents without shadow support refuse the manifest)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """Write NAME/VERSION/manifest.json, its signature and the files into DIR.

    Example: edge-agent registry publish m.tflite --name digits --version 1.4 --key k --to /srv/r
    """
    from ..updates.publish import describe, evaluation_from_report, parse_shadow_option
    from ..updates.publish import publish as do_publish

    shadow_spec = parse_shadow_option(shadow) if shadow is not None else None

    evaluation = evaluation_from_report(report, model) if report is not None else None
    desc = None
    if description is not None:
        try:
            desc = json.loads(description.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{description}: cannot read description JSON: {exc}") from None
    desc = dict(describe(model, desc))
    if decoder is not None or labels is not None:
        dec = dict(desc.get("decoder") or {})
        if decoder is not None:
            dec["name"] = decoder
        if labels is not None:  # one per line (blank lines keep their ids), or ID maps
            from ..inference.labels import read_labels

            dec["labels"] = read_labels(labels)
        desc["decoder"] = dec
    rel = do_publish(
        model,
        name=name,
        version=version,
        key=key,
        to=to,
        seq=seq,
        description=desc,
        golden=golden,
        atol=atol,
        rtol=rtol,
        latency_budget_ms=latency_budget_ms,
        trial_inferences=trial_inferences,
        trial_seconds=trial_seconds,
        expires_days=expires_days,
        min_agent=min_agent,
        evaluation=evaluation,
        shadow=shadow_spec,
    )
    m = rel.manifest
    if as_json:
        print_json({"dir": str(rel.directory), "name": m.name, "version": m.version,
                    "seq": m.seq, "keyid": rel.keyid, "files": [f.name for f in m.files],
                    "evaluation": m.evaluation.summary if m.evaluation else None})
    else:
        typer.echo(f"published {m.name} {m.version} (seq {m.seq}, key {rel.keyid}) "
                   f"to {rel.directory}")
        if m.evaluation is not None:
            typer.echo(f"evaluation {m.evaluation.summary}")
