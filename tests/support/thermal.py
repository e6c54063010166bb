"""Judging a frame-rate cap's history in the thermal tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def cap_moves(caps: Sequence[float]) -> list[float]:
    """The changes of the cap, in order (holds left out)."""
    return [b - a for a, b in itertools.pairwise(caps) if b != a]


def reversals(caps: Sequence[float]) -> int:
    """How often the cap changed direction (down then up, or up then down)."""
    return sum(1 for a, b in itertools.pairwise(cap_moves(caps)) if (a > 0) != (b > 0))
