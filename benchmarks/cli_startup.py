"""CLI startup: wall time and peak memory (RSS) of ``edge-agent --version`` / ``--help``.

    python3 benchmarks/cli_startup.py [--runs 15] [--against OTHER_CHECKOUT]

Each command runs as a fresh process (``python -m edge_agent ...``, what the installed
``edge-agent`` script does plus runpy), ``--runs`` times; the table shows the median wall time
and the median peak RSS (``ru_maxrss`` of that one child, from ``wait4``). ``python -c pass``
is the floor: the interpreter alone. With ``--against DIR`` (another checkout, e.g. a
``git worktree`` of an older commit) both trees run interleaved, command by command, and the
last column is the ratio this tree / other tree. Targets (#11): 0.15 s and 40 MB for
``--version`` and ``--help``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("edge-agent --version", ["-m", "edge_agent", "--version"]),
    ("edge-agent --help", ["-m", "edge_agent", "--help"]),
    ("edge-agent run --help", ["-m", "edge_agent", "run", "--help"]),
]


def run_once(tree: Path, args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one fresh process in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=tree, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: python {' '.join(args)} exited {proc.returncode}: "
                         f"{err.decode(errors='replace').strip()}")
    return seconds, usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--against", type=Path, default=None,
                    help="another checkout to measure side by side (e.g. the commit before)")
    args = ap.parse_args()
    trees = [HERE] + ([args.against.resolve()] if args.against else [])
    for tree in trees:  # warm the page cache and write .pyc files once, not measured
        for _, cmd in COMMANDS:
            subprocess.run([sys.executable, *cmd], cwd=tree, capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(tree)), check=False)
    results: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for name, cmd in COMMANDS:
            for tree in trees:  # interleaved: load on the machine hits both alike
                results.setdefault((tree, name), []).append(run_once(tree, cmd))

    head = f"{'command':<24} {'time p50':>9} {'RSS p50':>9}"
    if args.against:
        head += f" {'other time':>11} {'other RSS':>10} {'time ratio':>11} {'RSS ratio':>10}"
    print(f"python {sys.version.split()[0]}, {args.runs} runs each; this tree: {HERE}")
    if args.against:
        print(f"other tree: {args.against}")
    print(head)
    for name, _ in COMMANDS:
        t = statistics.median(s for s, _ in results[(HERE, name)])
        m = statistics.median(r for _, r in results[(HERE, name)])
        line = f"{name:<24} {t * 1000:>6.0f} ms {m:>6.1f} MB"
        if args.against:
            other = results[(trees[1], name)]
            ot = statistics.median(s for s, _ in other)
            om = statistics.median(r for _, r in other)
            line += f" {ot * 1000:>8.0f} ms {om:>7.1f} MB {t / ot:>11.2f} {m / om:>10.2f}"
        print(line)


if __name__ == "__main__":
    main()
