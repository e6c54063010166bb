"""Label files as people have them (pure: no I/O but :func:`read_labels`).

- one label per line, the line number is the class id (blank lines kept as unnamed ids);
- ``ID name`` or ``ID: name`` per line with sparse ids, e.g. COCO's 90-id map
  (``0  person``, ``1  bicycle``, ..., ``89  toothbrush`` with 11 ids unused). Read one per
  line, such a file shifts every name after the first gap (cat becomes dog). A file is read as
  an id map when every non-blank line starts with a number followed by a name;
- a background row first (``background``, ``???``, ``__background__``): kept when the model
  has a class for it (DeepLab's 21 classes, MobileNet's 1001), dropped by :func:`align_labels`
  when the model has one class fewer or, for SSD post-processing (whose class 0 is the first
  real class), always.

Labels are kept as a list by class id; ids without a name are ``""`` and show as the number.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DescriptionError

MAX_LABELS_BYTES = 1024 * 1024
MAX_LABEL_ID = 100_000
BACKGROUND = frozenset({"background", "???", "__background__", "bg", "unlabeled", "unlabelled"})
_ID_LINE = re.compile(r"^\s*(\d+)\s*(?::\s*|\s+)(\S.*?)\s*$")


def parse_labels(text: str, where: str = "labels") -> list[str]:
    """Labels by class id from the text of a labels file (either format)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    body = [line for line in lines if line.strip()]
    matches = [_ID_LINE.match(line) for line in body]
    if body and all(matches):
        names: dict[int, str] = {}
        for n, m in enumerate(matches, 1):
            assert m is not None
            cid, name = int(m.group(1)), m.group(2)
            if cid > MAX_LABEL_ID:
                raise DescriptionError(f"{where}: line {n}: class id {cid} > {MAX_LABEL_ID}")
            if cid in names:
                raise DescriptionError(f"{where}: line {n}: class id {cid} appears twice")
            names[cid] = name
        out = [""] * (max(names) + 1)
        for cid, name in names.items():
            out[cid] = name
        return out
    return [line.strip() for line in lines]


def read_labels(path: Path | str) -> list[str]:
    """A labels file (one per line, or ``ID name`` / ``ID: name``)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_LABELS_BYTES:
            raise DescriptionError(f"{p}: labels file is larger than {MAX_LABELS_BYTES} bytes")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DescriptionError(f"{p}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DescriptionError(f"{p}: cannot read labels file: {exc}") from None
    return parse_labels(text, str(p))


def is_background(name: str) -> bool:
    return name.strip().lower() in BACKGROUND


def align_labels(labels: list[str], classes: int | None) -> list[str]:
    """Labels for a model with ``classes`` outputs per location (None: SSD post-processing,
    whose class ids start at the first real class): a leading background row the model has no
    class for is dropped."""
    if not labels or not is_background(labels[0]):
        return labels
    if classes is None or len(labels) == classes + 1:
        return labels[1:]
    return labels
