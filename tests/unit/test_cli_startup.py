"""``--version`` and ``--help`` stay light: no heavy library is imported before a command runs.

Time and memory are measured by ``benchmarks/cli_startup.py`` (never timed in a test); this
checks the cause deterministically: which modules the process has loaded when it exits.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.helpers import cli_env

HEAVY = ("numpy", "cv2", "pydantic", "paho", "serial", "psutil", "rich", "cryptography",
         "ai_edge_litert", "tflite_runtime", "tensorflow", "sqlite3")

SCRIPT = """
import json, sys
args, heavy = json.loads(sys.argv[1])
sys.argv = ["edge-agent", *args]
from edge_agent.cli.main import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules} & set(heavy))), file=sys.stderr)
"""


# A subcommand's --help runs typer's parameter coercion, which imports pydantic (typer >= 0.2x):
# only the root's --version / --help can be this light.
@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_root_commands_import_no_heavy_library(args: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps([args, HEAVY])],
                       capture_output=True,
                       text=True, env=cli_env(), timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stderr.strip().splitlines()[-1])
    assert loaded == [], f"edge-agent {' '.join(args)} imported {loaded}"
    assert r.stdout.strip()
