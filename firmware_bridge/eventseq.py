"""Board event sequence numbers: lost events (gaps) apart from board resets. Pure, no I/O.

The board numbers its events with a 16-bit counter that starts again at 1 (its BOOT event)
after every reset and wraps from 0xFFFF to 0. A seq that moves forward by ``d`` means ``d - 1``
events were lost; a seq that goes backwards (or repeats: the board never sends one twice)
means the board reset and its BOOT event was lost (line noise at power-on), not 65,000 lost
events. A step back that lands just past the wrap point (within :data:`WRAP_WINDOW`) is the
counter wrapping, not a reset.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQ_MOD = 0x10000
WRAP_WINDOW = 1024  # a forward step across 0xFFFF -> 0 of at most this many is a wrap


@dataclass(frozen=True)
class SeqStep:
    """What one event's seq says: ``missed`` events lost before it, or a ``reset``."""

    missed: int = 0
    reset: bool = False
    previous: int | None = None


class EventSeq:
    """The last event seq seen; :meth:`observe` classifies the next one."""

    def __init__(self) -> None:
        self.last: int | None = None

    def forget(self) -> None:
        """The link went down or came back: the next seq starts a new count."""
        self.last = None

    def observe(self, seq: int, *, boot: bool = False) -> SeqStep:
        last, self.last = self.last, seq
        if boot or last is None:
            return SeqStep(previous=last)  # a BOOT is the reset itself; counted where seen
        if seq > last:
            return SeqStep(missed=seq - last - 1, previous=last)
        ahead = seq + SEQ_MOD - last
        if seq < last and ahead <= WRAP_WINDOW:
            return SeqStep(missed=ahead - 1, previous=last)
        return SeqStep(reset=True, previous=last)
