"""README, .ci/run, scripts/test and scripts/readme-on-debian agree on the commands.

README's test command is what CI runs; the test command runs every checker the project
configures; README's install makes the venv the test command and the run command use; the
Debian check runs README's own blocks (scripts/readme_block.py extracts them).
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _readme_block() -> ModuleType:
    path = ROOT / "scripts" / "readme_block.py"
    spec = importlib.util.spec_from_file_location("readme_block", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rb = _readme_block()
README = (ROOT / "README.md").read_text()


def _lines(path: Path) -> list[str]:
    """Command lines of a shell script: stripped, no comments, no blanks."""
    return [ln.strip() for ln in path.read_text().splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def test_ci_runs_readme_test_command() -> None:
    (block,) = rb.sh_blocks(README, "Test")
    assert block.strip() in _lines(ROOT / ".ci" / "run")


def test_test_command_runs_every_configured_checker() -> None:
    """Each checker configured in pyproject.toml is run by scripts/test, in the venv."""
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    command_for = {"ruff": "ruff check .", "mypy": "mypy", "importlinter": "lint-imports",
                   "pytest": 'python -m pytest -q "$@"'}
    lines = _lines(ROOT / "scripts" / "test")
    configured = [name for name in command_for if name in tools]
    assert {"ruff", "mypy", "pytest"} <= set(configured)
    for name in configured:
        assert command_for[name] in lines, f"scripts/test does not run {name}"
    venv_at = lines.index('export PATH="$PWD/.venv/bin:$PATH"')
    assert all(lines.index(command_for[name]) > venv_at for name in configured)


def test_install_makes_the_venv_the_test_command_uses() -> None:
    install = rb.sh_blocks(README, "Install")[0].splitlines()
    assert "python3-venv" in install[0] and install[0].startswith("sudo apt-get update && ")
    assert install[1:] == ["python3 -m venv .venv", ". .venv/bin/activate", "pip install -e ."]
    test_lines = _lines(ROOT / "scripts" / "test")
    assert "[ -x .venv/bin/python ] || python3 -m venv .venv" in test_lines
    assert ".venv/bin/python -m pip install -q -e '.[test,modelops,central]'" in test_lines
    # no pip outside the venv anywhere in README (PEP 668 refuses it on Debian)
    assert "python3 -m pip" not in README and "sudo pip" not in README


def test_debian_check_runs_readme_install_and_first_run_blocks() -> None:
    script = (ROOT / "scripts" / "readme-on-debian").read_text()
    assert 'blocks=("Install" "Run 1 2")' in script and "readme_block.py $b" in script
    run1, run2 = rb.pick(rb.sh_blocks(README, "Run"), "Run", ["1", "2"])
    # the defaults need no broker, camera or config: these finish on a bare machine
    assert run1 == "edge-agent run --duration 10"
    assert run2.endswith("edge-agent run --frames 50") and "EDGE_AGENT_CAMERA__SOURCE=demo" in run2
    assert "scripts/readme-on-debian" in _lines(ROOT / ".ci" / "run")


def test_blocks_of_a_section_stop_at_the_next_heading() -> None:
    text = "# t\n## A\n```sh\na1\na2\n```\ntext\n```sh\na3\n```\n## B\n```sh\nb1\n```\n"
    assert rb.sh_blocks(text, "A") == ["a1\na2", "a3"]
    assert rb.sh_blocks(text, "B") == ["b1"]


@pytest.mark.parametrize(("text", "section", "message"), [
    ("## A\n", "B", "no '## B' heading"),
    ("## A\ntext only\n## B\n```sh\nb\n```\n", "A", "'## A' has no ```sh block"),
    ("## A\n```sh\nnever closed\n", "A", "'## A' has a ```sh block that is not closed"),
])
def test_bad_readme_sections_are_named(text: str, section: str, message: str) -> None:
    with pytest.raises(rb.ReadmeSectionError, match="^" + re.escape("README.md: " + message)):
        rb.sh_blocks(text, section)


def test_cli_prints_blocks_and_one_line_errors() -> None:
    script = str(ROOT / "scripts" / "readme_block.py")
    ok = subprocess.run([sys.executable, script, "Test"], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, "scripts/test\n")
    bad = subprocess.run([sys.executable, script, "Run", "99"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: README.md: '## Run' has ")
    assert "no block '99'" in bad.stderr
    assert bad.stderr.count("\n") == 1
