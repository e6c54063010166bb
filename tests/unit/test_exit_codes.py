"""Exit codes mean one thing: one table (ExitCode) for both packages, in the code and the docs."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import edge_agent
import firmware_bridge
from edge_agent.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def _all_modules() -> list[str]:
    names = []
    for pkg in (edge_agent, firmware_bridge):
        names.append(pkg.__name__)
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__" or ".tests" in info.name:
                continue  # __main__ runs the CLI when imported; tests are no library code
            names.append(info.name)
    return names


def _declared() -> dict[type, int]:
    """Every class of both packages that declares ``exit_code`` itself (not inherited)."""
    out: dict[type, int] = {}
    for name in _all_modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and obj.__module__ == name
                    and "exit_code" in vars(obj)):
                out[obj] = vars(obj)["exit_code"]
    return out


def test_every_exception_class_declares_a_code_no_other_class_declares() -> None:
    declared = _declared()
    assert len(declared) > 30  # the walk found the classes of every errors module
    by_code: dict[int, list[str]] = {}
    for cls, code in declared.items():
        assert issubclass(cls, BaseException), cls
        by_code.setdefault(int(code), []).append(f"{cls.__module__}.{cls.__qualname__}")
    repeated = {code: names for code, names in by_code.items() if len(names) > 1}
    assert not repeated, f"exit codes declared by more than one class: {repeated}"
    unknown = sorted(set(by_code) - {int(c) for c in ExitCode})
    assert not unknown, f"exit codes missing from edge_agent.errors.ExitCode: {unknown}"
    unused = sorted(c.name for c in ExitCode
                    if int(c) not in by_code and c not in (ExitCode.OK, ExitCode.INTERRUPTED))
    assert not unused, f"ExitCode rows no exception class declares: {unused}"


def test_docs_table_is_the_code_table() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (\w+) \| *`?(\w*)`? *\|", section, flags=re.M)
    assert [(int(c), n) for c, n, _ in rows] == [(int(c), c.name) for c in ExitCode]
    classes = {cls.__name__: code for cls, code in _declared().items()}
    for code, _name, error in rows:
        if error:
            assert classes.get(error) == int(code), (code, error, classes.get(error))


def test_cli_exits_only_with_codes_from_the_table() -> None:
    codes = {int(c) for c in ExitCode}
    for path in sorted((ROOT / "edge_agent" / "cli").glob("*.py")):
        for literal in re.findall(r"typer\.Exit\((\d+)\)", path.read_text(encoding="utf-8")):
            assert int(literal) in codes, (path.name, literal)
