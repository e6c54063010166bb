"""Rate limits for warnings that can repeat per frame or per message (issue #10).

:class:`Throttle` is pure (the time is passed in): per *cause* (a short key such as
``"bad frame /data/in"``) the first occurrence passes, later ones within ``interval_s`` are only
counted, and the first one after the interval passes again carrying that count. :meth:`due`
hands out the counts of causes that went quiet, so a flood that stopped is still reported.

:class:`ThrottledLog` puts a logger behind it: ``warn(cause, msg)`` logs ``msg`` or counts it;
a passing line ends with ``(N more like this in the last 60 s)``; :meth:`ThrottledLog.flush`
(call it from a loop that runs anyway, and at stop) logs the cause's last message with
``(N more like this in the last 60 s; this was the last)`` for counts nobody reported yet.
Nothing is lost: every occurrence is either logged or counted in a later line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 60.0
MAX_CAUSES = 256  # a flood of distinct causes cannot grow the table without limit


@dataclass
class _Entry:
    opened: float  # when the line that opened this interval passed
    suppressed: int = 0


class Throttle:
    """Per-cause counting: :meth:`admit` says whether to emit now and how many were held back."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, max_causes: int = MAX_CAUSES):
        if interval_s <= 0 or max_causes < 1:
            raise ValueError("need interval_s > 0 and max_causes >= 1")
        self.interval_s = interval_s
        self.max_causes = max_causes
        self._entries: dict[str, _Entry] = {}
        self._evicted: list[tuple[str, int, float]] = []
        self.suppressed_total = 0

    def causes(self) -> set[str]:
        return set(self._entries)

    @property
    def empty(self) -> bool:
        """No cause is being watched and no count waits to be reported."""
        return not self._entries and not self._evicted

    def admit(self, cause: str, now: float) -> tuple[int, float] | None:
        """None: hold this one back (it is counted). Else emit it; the value is how many of the
        same cause were held back since the last emitted one (0 for a first occurrence) and the
        seconds since that one."""
        entry = self._entries.get(cause)
        if entry is None:
            if len(self._entries) >= self.max_causes:
                # forget the oldest cause; its pending count is handed out by the next due()
                oldest = min(self._entries, key=lambda k: self._entries[k].opened)
                gone = self._entries.pop(oldest)
                if gone.suppressed:
                    self._evicted.append((oldest, gone.suppressed, now - gone.opened))
            self._entries[cause] = _Entry(opened=now)
            return 0, 0.0
        if now - entry.opened < self.interval_s:
            entry.suppressed += 1
            self.suppressed_total += 1
            return None
        held, since = entry.suppressed, now - entry.opened
        self.suppressed_total -= held
        entry.opened, entry.suppressed = now, 0
        return held, since

    def due(self, now: float, *, but: str | None = None) -> list[tuple[str, int, float]]:
        """(cause, count, seconds) for causes whose interval ended with occurrences held back
        (except ``but``); those counts are reported now, and the cause's next occurrence passes
        at once."""
        out, self._evicted = self._evicted, []
        for cause, entry in list(self._entries.items()):
            if now - entry.opened < self.interval_s or cause == but:
                continue
            if entry.suppressed:
                out.append((cause, entry.suppressed, now - entry.opened))
            del self._entries[cause]  # its next occurrence is a first one again
        self.suppressed_total -= sum(n for _, n, _ in out)
        return out

    def drain(self, now: float) -> list[tuple[str, int, float]]:
        """Every pending count, due or not (at stop)."""
        out, self._evicted = self._evicted, []
        out += [(c, e.suppressed, now - e.opened) for c, e in self._entries.items() if e.suppressed]
        self._entries.clear()
        self.suppressed_total = 0
        return out


def cause_of(text: str) -> str:
    """A throttling key for a message that carries changing numbers: hex addresses and
    numbers blanked (``frame 17: ...`` and ``frame 18: ...`` are one cause)."""
    return re.sub(r"\d+", "#", re.sub(r"0x[0-9a-fA-F]+", "0x", text))


def _more(count: int, seconds: float) -> str:
    return f"{count} more like this in the last {seconds:.0f} s"


class ThrottledLog:
    """A logger whose repeated lines are throttled per cause; thread-safe."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.throttle = Throttle(interval_s)
        self.clock = clock
        self._last: dict[str, tuple[int, str]] = {}  # cause -> (level, message) for summaries
        self._lock = threading.Lock()

    def log(self, level: int, cause: str, message: str) -> bool:
        """Log ``message`` unless its cause was logged within the interval; True if logged.
        Counts of other causes that went quiet are logged first (see :meth:`flush`)."""
        self.flush(but=cause)
        with self._lock:
            admitted = self.throttle.admit(cause, self.clock())
            self._last[cause] = (level, message)
        if admitted is None:
            return False
        held, since = admitted
        if held:
            message = f"{message} ({_more(held, since)})"
        self.logger.log(level, "%s", message)
        return True

    def warn(self, cause: str, message: str) -> bool:
        return self.log(logging.WARNING, cause, message)

    def flush(self, *, final: bool = False, but: str | None = None) -> int:
        """Log the counts of causes that went quiet (all pending ones if ``final``)."""
        if not self._last and self.throttle.empty:
            return 0  # nothing was ever held back (the camera reader calls this every frame)
        with self._lock:
            now = self.clock()
            pending = self.throttle.drain(now) if final else self.throttle.due(now, but=but)
            lines = [(self._last.get(c, (logging.WARNING, c)), c, n, t) for c, n, t in pending]
            live = self.throttle.causes()
            for cause in [c for c in self._last if c not in live]:
                del self._last[cause]
        for (level, last), _cause, count, seconds in lines:
            self.logger.log(level, "%s (%s; this was the last)", last, _more(count, seconds))
        return len(lines)
