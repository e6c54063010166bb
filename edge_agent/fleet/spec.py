"""What an operator types for a rollout, parsed and checked: waves, thresholds, durations.

Pure. Every error is a :class:`~.errors.RolloutError` naming the option and the value.

Waves are cumulative: ``1,10%,50%,100%`` means one device in the first wave, then up to 10 %
of the devices that need the update, then 50 %, then all of them. A count is a number of
devices, a percentage is of the devices the rollout updates (devices already on the version
are skipped and not counted). The last wave must be ``100%``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from .errors import RolloutError

MAX_WAVES = 20


@dataclass(frozen=True)
class WaveSize:
    """One entry of ``--waves``: ``count`` devices or ``percent`` of them (cumulative)."""

    count: int | None = None
    percent: float | None = None

    def resolve(self, n: int) -> int:
        if self.count is not None:
            return min(self.count, n)
        assert self.percent is not None
        return min(n, math.ceil(n * self.percent / 100 - 1e-9))

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


def parse_waves(text: str) -> tuple[WaveSize, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise RolloutError(f"--waves {text!r}: expected a comma-separated list like 1,10%,100%")
    if len(parts) > MAX_WAVES:
        raise RolloutError(f"--waves {text!r}: at most {MAX_WAVES} waves")
    waves: list[WaveSize] = []
    for p in parts:
        if p.endswith("%"):
            pct = _number(p[:-1], f"--waves {text!r}: {p!r}")
            if not 0 < pct <= 100:
                raise RolloutError(f"--waves {text!r}: {p!r} is not within (0, 100] %")
            waves.append(WaveSize(percent=pct))
        else:
            if not re.fullmatch(r"[0-9]{1,7}", p) or int(p) < 1:
                raise RolloutError(
                    f"--waves {text!r}: {p!r} is neither a device count (>= 1) nor a percentage"
                )
            waves.append(WaveSize(count=int(p)))
    for a, b in itertools.pairwise(waves):
        if (a.count is not None and b.count is not None and b.count < a.count) or (
                a.percent is not None and b.percent is not None and b.percent < a.percent):
            raise RolloutError(f"--waves {text!r}: {b} after {a}: waves are cumulative "
                               "(each one the total so far), so they cannot shrink")
    if waves[-1].percent != 100:
        raise RolloutError(f"--waves {text!r}: the last wave must be 100% (every device)")
    return tuple(waves)


def resolve_waves(waves: tuple[WaveSize, ...], n: int) -> list[int]:
    """Cumulative device counts of each non-empty wave for ``n`` devices (ends with ``n``).

    A wave never shrinks: ``5,10%,100%`` over 20 devices is 5 then 5 (empty, dropped) then 20."""
    out: list[int] = []
    for w in waves:
        c = w.resolve(n)
        if c > (out[-1] if out else 0):
            out.append(c)
    return out


def parse_percent(text: str | float, what: str) -> float:
    s = str(text).strip()
    v = _number(s[:-1] if s.endswith("%") else s, f"{what} {text!r}")
    if not 0 <= v <= 100:
        raise RolloutError(f"{what} {text!r}: expected a percentage within 0..100")
    return v


def parse_duration(text: str | float, what: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h`` -> seconds (> 0)."""
    s = str(text).strip()
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(s|m|h)?", s)
    if not m:
        raise RolloutError(f"{what} {text!r}: expected seconds or a duration like 90s, 15m, 1h")
    v = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if v <= 0 or v > 7 * 86400:
        raise RolloutError(f"{what} {text!r}: expected more than 0 s and at most 7 days")
    return v


def _number(s: str, where: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise RolloutError(f"{where}: not a number") from None
    if not math.isfinite(v):
        raise RolloutError(f"{where}: not a finite number")
    return v
