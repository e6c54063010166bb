"""Peak resident memory of one model, measured in a process of its own.

``python -m edge_agent.modelops.rss MODEL [--threads N] [--runs K]`` imports the runtime, notes
the peak RSS so far (the baseline), loads the model, invokes it K times and prints one JSON
line: ``{"baseline_kb", "peak_kb", "model_kb"}`` (``model_kb`` = peak - baseline). On Linux the
peak is reset to the current RSS before the model loads, so the imports' own peak does not
hide the model's. A process
per model, because a process that loaded both would report the larger of the two twice.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 120


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_kb() -> int:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def measure(path: Path, threads: int = 1, runs: int = 5) -> dict[str, Any]:
    """Run the measurement in a child process; ``{"error": ...}`` if it failed."""
    try:
        r = subprocess.run(
            [sys.executable, "-m", "edge_agent.modelops.rss", str(path), "--threads",
             str(threads), "--runs", str(runs)],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer in {TIMEOUT_S} s"}
    if r.returncode != 0:
        lines = (r.stderr or "").strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    try:
        out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "unreadable answer"}
    return out


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m edge_agent.modelops.rss")
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    from ..inference import Model
    from ..inference.backend import select_backend

    select_backend("auto")
    # the imports' own peak must not hide the model's: start the peak from the current RSS
    baseline = _status_kb("VmRSS") if _reset_peak() else None
    if baseline is None:
        baseline = _peak_kb()
    model = Model(args.model, threads=args.threads)
    model.warmup(max(1, args.runs))
    peak = _peak_kb()
    sys.stdout.write(json.dumps(
        {"baseline_kb": baseline, "peak_kb": peak, "model_kb": peak - baseline}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
