"""README's test command is exactly what .ci/run runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Test", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert block in ci_lines
