"""Print the shell code blocks of one README.md section, so scripts run README's own lines.

    python3 scripts/readme_block.py Install        # every ```sh block under "## Install"
    python3 scripts/readme_block.py Run 1 2        # the first and second blocks under "## Run"
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


class ReadmeSectionError(Exception):
    """README.md has no such section, or no such code block in it."""


def sh_blocks(text: str, section: str) -> list[str]:
    """The ```sh blocks under the "## <section>" heading (up to the next "## "), in order."""
    lines = text.splitlines()
    try:
        start = lines.index(f"## {section}") + 1
    except ValueError:
        raise ReadmeSectionError(f"README.md: no '## {section}' heading") from None
    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines[start:]:
        if current is None:
            if line.startswith("## "):
                break
            if line.strip() == "```sh":
                current = []
        elif line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    if current is not None:
        raise ReadmeSectionError(f"README.md: '## {section}' has a ```sh block that is not closed")
    if not blocks:
        raise ReadmeSectionError(f"README.md: '## {section}' has no ```sh block")
    return blocks


def pick(blocks: list[str], section: str, numbers: list[str]) -> list[str]:
    """Blocks by 1-based number (all of them when none are given)."""
    if not numbers:
        return blocks
    picked = []
    for n in numbers:
        if not n.isdigit() or not 1 <= int(n) <= len(blocks):
            raise ReadmeSectionError(
                f"README.md: '## {section}' has {len(blocks)} ```sh block(s), no block {n!r}")
        picked.append(blocks[int(n) - 1])
    return picked


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: readme_block.py SECTION [N ...]", file=sys.stderr)
        return 2
    try:
        blocks = pick(sh_blocks(README.read_text(), argv[0]), argv[0], argv[1:])
    except ReadmeSectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
