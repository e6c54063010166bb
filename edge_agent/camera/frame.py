"""A captured frame and the slot that hands the newest one to the inference worker."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

Policy = Literal["latest", "all"]


@dataclass(frozen=True)
class Frame:
    """One BGR image with its per-reader sequence number and capture time.

    ``t_capture`` is on the monotonic clock (the moment the reader got the frame from the
    source); ``wall_time`` is ``time.time()`` at the same moment, for records sent off-device.
    """

    image: np.ndarray
    seq: int
    t_capture: float
    wall_time: float


class LatestFrameSlot:
    """Holds at most one frame between the camera reader and the worker.

    Policy ``latest`` (live cameras): :meth:`put` replaces a frame nobody took and counts it in
    :attr:`dropped`, so the worker always gets the freshest frame. Policy ``all`` (files,
    benchmarks): :meth:`put` waits until the worker took the previous frame; nothing is dropped.
    :meth:`close` wakes everybody; after it, :meth:`put` refuses and :meth:`get` drains.
    """

    def __init__(self, policy: Policy = "latest", *, on_demand: bool = False) -> None:
        if policy not in ("latest", "all"):
            raise ValueError(f"unknown frame policy {policy!r}; use 'latest' or 'all'")
        self.policy: Policy = policy
        self.on_demand = on_demand and policy == "all"
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._requests = 0
        self._closed = False
        self.put_count = 0
        self.taken = 0
        self.dropped = 0

    def put(self, frame: Frame, timeout: float | None = None) -> bool:
        """Offer a frame. False if the slot is closed (or, policy ``all``, on timeout)."""
        with self._cond:
            if self.policy == "all":
                if not self._cond.wait_for(
                    lambda: self._frame is None or self._closed, timeout=timeout
                ):
                    return False
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """Take the frame, waiting up to ``timeout``; None on timeout or when closed and empty."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._frame is not None or self._closed, timeout=timeout
            ):
                return None
            frame, self._frame = self._frame, None
            if frame is not None:
                self.taken += 1
                self._cond.notify_all()
            return frame

    # Reading on demand (policy ``all`` over a file): the reader waits for the worker's request
    # so that a frame is decoded just before it is needed instead of ageing in the slot.
    def request(self) -> None:
        """Ask the reader for one frame (no-op unless ``on_demand``)."""
        if not self.on_demand:
            return
        with self._cond:
            if self._requests == 0:
                self._requests = 1
                self._cond.notify_all()

    def wait_request(self, timeout: float | None = None) -> bool:
        """Reader side: wait until a frame is wanted (always true unless ``on_demand``)."""
        if not self.on_demand:
            return True
        with self._cond:
            if not self._cond.wait_for(lambda: self._requests > 0 or self._closed, timeout):
                return False
            if self._closed:
                return False
            self._requests = 0
            return True

    def discard(self) -> int:
        """Drop a waiting frame (counted in :attr:`dropped`); returns how many were dropped."""
        with self._cond:
            if self._frame is None:
                return 0
            self._frame = None
            self.dropped += 1
            self._cond.notify_all()
            return 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return 0 if self._frame is None else 1
