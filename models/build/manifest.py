"""Rewrite the sha256 table in models/README.md (between the manifest markers).

    .venv-models/bin/python models/build/manifest.py   (plain python3 works too)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, sha256, write_atomic

BEGIN = "<!-- manifest:begin -->"
END = "<!-- manifest:end -->"


def table() -> str:
    rows = ["| file | bytes | sha256 |", "|---|---:|---|"]
    for path in sorted(MODELS_DIR.glob("*.tflite")) + sorted(MODELS_DIR.glob("*.json")):
        rows.append(f"| `{path.name}` | {path.stat().st_size} | `{sha256(path)}` |")
    return "\n".join(rows)


def main() -> None:
    readme = MODELS_DIR / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    write_atomic(readme, f"{head}{BEGIN}\n{table()}\n{END}{tail}".encode())
    print(table())


if __name__ == "__main__":
    main()
