"""Exponential backoff with jitter for reconnecting (camera sources, the MQTT link). Pure."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each shortened by up to ``jitter``.

    The jitter (a random fraction in ``[1 - jitter, 1]``) keeps a fleet of devices that lost the
    same stream from reconnecting in lockstep. ``rng`` is injectable for deterministic tests.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        if factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need factor >= 1 and 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; advances the attempt counter."""
        base = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempts = 0


class HeldBackoff:
    """Backoff for a connection that may flap: reset only once a connection *held*.

    :meth:`up` when a connection is established, :meth:`next_delay` when it is lost or an
    attempt failed. A connection that lasted ``hold_s`` or longer resets the backoff (the next
    retry comes after ``initial``); one dropped sooner (a broker that accepts and then closes,
    a flapping link) keeps growing it, so a fleet does not hammer a broker that is not healthy.
    Pure: the clock is passed in.
    """

    def __init__(self, backoff: Backoff, hold_s: float) -> None:
        self.backoff = backoff
        self.hold_s = hold_s
        self._up_since: float | None = None

    def up(self, now: float) -> None:
        self._up_since = now

    def next_delay(self, now: float) -> float:
        if self._up_since is not None and now - self._up_since >= self.hold_s:
            self.backoff.reset()
        self._up_since = None
        return self.backoff.next_delay()
