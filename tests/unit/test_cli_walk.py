"""Walks every command and subcommand of ``edge-agent`` (issue 12): the same flags, help and
errors everywhere. New commands are covered as soon as they are registered; a command that reads
no config or reports nothing has to be listed below, so the exception is a decision.

Per command: help on every option and argument; an ``Example:`` line; readable labels (no
``<str>``, ``{model}``); bracketed words such as ``[logging]`` survive the help renderer; ``-c``
and ``--config`` where a config is read; ``--json`` on every reporting command; a usage error
exits 2 (with ``--json``: a JSON error); an error case with ``--json`` prints one JSON error
``{error, message, exit_code}`` whose code is the exit status. The success side of ``--json``
is run for every command that can succeed on this machine without a broker, a board or a
service (``SUCCESS`` below); those are covered by their integration tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edge_agent.cli.helpfmt import walk
from edge_agent.cli.main import build_command, main

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "digits_int8.tflite"
IMAGE = ROOT / "tests" / "data" / "coffee.jpg"

# Commands that read no agent or operator config (everything else must take -c/--config).
NO_CONFIG = {
    "config schema",  # the schema is the same for every file
    "config validate",  # the file to check is its argument
    "registry keygen",
    "registry publish",  # the release side: key and registry directory are arguments
    "models quantize",  # model files in, model files out
    "models compare",
}
# Commands that report nothing (they run a service): no --json.
NO_JSON = {
    "fleet serve",
}
# Commands without a failure that a bad argument could cause.
CANNOT_FAIL = {"config schema"}


def _commands() -> list[tuple[str, Any]]:
    return [(" ".join(p), c) for p, c in walk(build_command()) if p and not hasattr(c, "commands")]


COMMANDS = _commands()
IDS = [name for name, _ in COMMANDS]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 0), out, err


def _opts(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def test_the_walk_finds_the_commands() -> None:
    assert {"run", "status", "doctor", "infer", "config show", "models list",
            "fleet cmd", "bridge gpio set"} <= set(IDS)
    assert not (NO_CONFIG | NO_JSON | CANNOT_FAIL) - set(IDS), "a listed command is gone"


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=IDS)
def test_help(name: str, cmd: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for p in cmd.params:
        if p.name != "help":
            assert (p.help or "").strip(), f"{name}: {p.opts or p.name} has no help"
    assert re.search(r"Example:[^\n]*edge-agent " + re.escape(name.split()[0]), cmd.help or ""), \
        f"{name}: no `Example: edge-agent {name} ...` in its help"
    code, out, _ = _run(capsys, *name.split(), "--help")
    assert code == 0
    usage = out.splitlines()[0]
    assert "{" not in usage and "}" not in usage, usage
    assert not re.search(r"<(str|path|bool|int|float|list)[^>]*>", out), out
    for p in cmd.params:  # bracketed words survive the renderer ([logging], [bridge] port)
        for word in re.findall(r"\[[a-z_.]+\]", p.help or ""):
            assert word in out, f"{name}: {word} vanished from the help of {p.opts}"


def test_root_help_keeps_bracketed_words(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "Wins over [logging] format" in out


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=IDS)
def test_flags(name: str, cmd: Any) -> None:
    opts = _opts(cmd)
    if name not in NO_CONFIG:
        assert {"-c", "--config"} <= opts, f"{name} reads a config: it takes -c/--config"
    if name not in NO_JSON:
        assert "--json" in opts, f"{name} reports something: it takes --json"


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=IDS)
def test_usage_error_exits_2(name: str, cmd: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, *name.split(), "--no-such-flag")
    assert code == 2 and "no-such-flag" in err and out == ""
    if "--json" in _opts(cmd):
        code, out, err = _run(capsys, *name.split(), "--no-such-flag", "--json")
        assert code == 2
        assert json.loads(out) == {"error": "usage", "message": "No such option: --no-such-flag",
                                   "exit_code": 2}


def _dummy(p: Any, tmp: Path) -> list[str]:
    """A value of the right shape that names nothing that exists."""
    label = str(p.metavar or "")
    blocker = tmp / "a-file"  # a path under a regular file can be neither read nor written
    blocker.touch()
    value = "1" if label in ("INTEGER", "NUMBER") or p.name in ("pin", "value") else str(
        blocker / p.name)
    if p.param_type_name == "argument":
        return [value] * (2 if p.nargs != 1 else 1)
    return [p.opts[0], value]


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=IDS)
def test_json_error(name: str, cmd: Any, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    if name in CANNOT_FAIL or "--json" not in _opts(cmd):
        return
    argv = [*name.split()]
    for p in cmd.params:
        if p.required:
            argv += _dummy(p, tmp_path)
    if "--config" in _opts(cmd):
        argv += ["--config", str(tmp_path / "missing.toml")]
    code, out, err = _run(capsys, *argv, "--json")
    assert code != 0, (name, out, err)
    doc = json.loads(out)
    assert "Traceback" not in err, err
    if doc.get("ok") is False:  # a check that reports its failures (doctor)
        return
    assert set(doc) == {"error", "message", "exit_code"} and doc["exit_code"] == code, doc
    assert doc["message"], doc


@pytest.fixture(scope="module")
def agent_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("agent")
    f = d / "agent.toml"
    f.write_text(f'[device]\nstate_dir = "{d / "state"}"\n[camera]\nsource = "synthetic"\n'
                 f'[model]\npath = "{MODEL}"\n[mqtt]\nenabled = false\n')
    return f


def _success(tmp: Path, cfg: Path) -> dict[str, list[str]]:
    return {
        "config show": ["-c", str(cfg)],
        "config validate": [str(cfg)],
        "config schema": [],
        "infer": [str(MODEL), str(IMAGE), "-c", str(cfg)],
        "models inspect": [str(MODEL), "-c", str(cfg)],
        "models list": ["-c", str(cfg)],
        "models verify": ["-c", str(cfg)],
        "models gc": ["-c", str(cfg)],
        "bench": [str(MODEL), "--runs", "3", "--warmup", "0", "-c", str(cfg)],
        "registry keygen": [str(tmp / "release.key")],
        "camera snapshot": [str(tmp / "snap.jpg"), "-c", str(cfg)],
    }


def test_json_success(agent_toml: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    for name, args in _success(tmp_path, agent_toml).items():
        code, out, err = _run(capsys, *name.split(), *args, "--json")
        assert code == 0, (name, out, err)
        for line in out.splitlines():
            assert isinstance(json.loads(line), dict), (name, line)
