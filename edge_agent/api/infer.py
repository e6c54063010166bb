"""``POST /v1/infer``'s engine: its own interpreters, bounded admission, per-request decoders.

The camera's pipeline keeps its interpreter to itself: each worker here holds a clone of the
pipeline's current Runner (its own interpreter of the same model, same preprocessing and
decoder), made again when the pipeline swaps models (an update, a rollback). At most
``max_pending`` requests are admitted (running or waiting for a worker); one more is
:class:`Busy` (429) at once, never queued without bound. ``?threshold=`` / ``?top_k=`` get a
Runner with those decoder settings over the same interpreter (a few kept per worker). The
images are decoded and run on the pool's own threads (:meth:`InferPool.submit`: ``workers``
+ 1, made when first needed, so one image is decoded while the interpreters run; the other
admitted requests wait for a thread), which run ``nice`` lower (``http.nice``, 5): under CPU
contention the camera's pipeline keeps its share. A small image (``inline_max_pixels`` by its
header) runs on the event loop itself when the server has no other request (in flight or
waiting to be read: :attr:`InferPool.others`): the hop to a pool thread and back is ~0.4 ms,
a tenth of such a request.

While the camera's pipeline is contended (:class:`~.duty.ContentionWatch`), the requests run
one at a time under a duty cap (:class:`~.duty.DutyCap`: ``http.infer_duty`` of a core over
the CPU seconds their decode + run + reply took on their thread); those waiting for it keep
their admission slots, so once they are all taken one more is 429 with a ``Retry-After`` of
the expected wait.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .bodies import decode_image
from .duty import ContentionWatch, DutyCap

MAX_VARIANTS = 8  # decoder settings kept per worker


class Busy(Exception):
    """Every /v1/infer slot is taken (429); ``retry_after`` whole seconds to wait."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Exception):
    """No model to run (503): the pipeline has none loaded."""


class _Worker:
    def __init__(self) -> None:
        self.origin: Any = None  # the pipeline Runner this worker's clone is of
        self.runner: Any = None
        self.variants: OrderedDict[tuple[float | None, int | None], Any] = OrderedDict()
        self.about_model: Any = None
        self.about: tuple[str, Any, dict[str, Any]] = ("", None, {})
        """the backend, delegate and model fields of the replies, made once per model"""

    def describe(self, model: Any) -> tuple[str, Any, dict[str, Any]]:
        if model is not self.about_model:
            self.about = (model.backend.label, getattr(model, "delegate", None),
                          {"file": getattr(getattr(model, "path", None), "name", None),
                           "sha256": getattr(model, "sha256", None)})
            self.about_model = model
        return self.about

    def runner_for(self, source: Any, threshold: float | None, top_k: int | None) -> Any:
        if source is not self.origin:
            self.runner = source.clone()
            self.origin = source
            self.variants.clear()
        if threshold is None and top_k is None:
            return self.runner
        key = (threshold, top_k)
        found = self.variants.get(key)
        if found is None:
            from ..inference.description import apply_overrides
            from ..inference.runner import Runner

            desc = apply_overrides(self.runner.description,
                                   {"threshold": threshold, "top_k": top_k})
            found = Runner(self.runner.model, desc)
            self.variants[key] = found
            while len(self.variants) > MAX_VARIANTS:
                self.variants.popitem(last=False)
        else:
            self.variants.move_to_end(key)
        return found


def _cpu_timed(fn: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    """``fn`` that appends the CPU seconds its thread spent in it to ``spent`` (with one
    interpreter thread, ``invoke()`` runs on the calling thread: decode + run + reply)."""
    def timed(*args: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent.append(time.thread_time() - t0)
    return timed


class InferPool:
    """``workers`` interpreters for API callers; ``source()`` is the pipeline's Runner now."""

    def __init__(self, source: Callable[[], Any], workers: int = 1, max_pending: int = 4,
                 nice: int = 0, inline_max_pixels: int = 0) -> None:
        self.source = source
        self.nice = nice
        self.inline_max_pixels = inline_max_pixels
        self.max_pending = max(max_pending, workers)
        self.threads = min(self.max_pending, workers + 1)
        """the pool's threads: one image decoded while the interpreters run (more would only
        hold more decoded images, each in its own malloc arena, for no more throughput)"""
        self._waited = threading.local()  # a pool thread's wait for it, for ``queued``
        self.workers = [_Worker() for _ in range(workers)]
        self._free: queue.SimpleQueue[_Worker] = queue.SimpleQueue()  # C: no Python lock
        for w in self.workers:
            self._free.put(w)
        self._lock = threading.Lock()
        self.counts = {"ok": 0, "busy": 0, "bad_input": 0, "failed": 0, "throttled": 0,
                       "inline": 0}
        self.throttle_wait_s = 0.0
        self._in_flight = 0
        self.others: Callable[[], int] = lambda: 1
        """HTTP requests the server has as tasks besides the caller's (uvicorn's tasks less
        one, stream viewers not counted; set by the component; while unknown, 1: never
        inline)"""
        self._executor: ThreadPoolExecutor | None = None
        self.cap: DutyCap | None = None
        self.watch: ContentionWatch | None = None
        self._gate: asyncio.Lock | None = None
        self._was_capped = False
        self._cost_s = 0.01  # running estimate of one request's seconds (for Retry-After)

    def set_duty_cap(self, duty: float, watch: ContentionWatch) -> None:
        """Hold the requests to ``duty`` of a core while ``watch`` says the pipeline is
        contended (``duty`` 0: never)."""
        self.cap = DutyCap(duty) if duty > 0 else None
        self.watch = watch if duty > 0 else None

    def capped(self) -> bool:
        """The duty cap is in force now (the pipeline is contended)."""
        return self.watch is not None and self.watch.contended()

    def inline_now(self, pixels: int | None) -> bool:
        """An admitted request that is no task of the server's (answered in its HTTP protocol:
        :mod:`.infer_protocol`) may run on the event loop now: the image is small, the duty
        cap is not in force, and the server has no other request."""
        if pixels is None or pixels > self.inline_max_pixels or self.capped():
            return False
        self._was_capped = False
        return self._can_inline(0)

    async def run_request(self, fn: Callable[..., Any], *args: Any,
                          pixels: int | None = None) -> Any:
        """``fn(*args)`` for one admitted request, the caller a task of the server's: inline
        when the image is small (``pixels``) and the server serves nothing else, else on a
        pool thread; under the duty cap while the pipeline is contended."""
        if not self.capped():
            self._was_capped = False
            return await self._run(fn, args, pixels)
        if self._gate is None:
            self._gate = asyncio.Lock()
        async with self._gate:
            cap = self.cap
            assert cap is not None
            if not self._was_capped:  # the cap starts now: no debt from uncapped work
                self._was_capped = True
                cap.fill()
            delay = cap.delay()
            if delay > 0:
                t0 = time.monotonic()
                while delay > 0:
                    await asyncio.sleep(delay)
                    delay = cap.delay()
                self.count("throttled")
                with self._lock:
                    self.throttle_wait_s += time.monotonic() - t0
            spent: list[float] = []
            try:
                return await self._run(_cpu_timed(fn, spent), args, pixels)
            finally:
                if spent:
                    cap.charge(spent[0])
                    self._cost_s += (spent[0] - self._cost_s) * 0.2

    async def _run(self, fn: Callable[..., Any], args: tuple[Any, ...],
                   pixels: int | None) -> Any:
        if pixels is not None and pixels <= self.inline_max_pixels and self._can_inline(1):
            self.count("inline")
            return fn(*args)
        return await self.submit(fn, *args)

    def _can_inline(self, own_tasks: int) -> bool:
        """No other request in flight or waiting on the loop (``own_tasks``: the caller's own
        among the server's tasks, 1 or 0) (concurrent callers gain more
        from the pool: one image decoded while another runs, which the loop cannot do while it
        runs one; and they would wait behind it), and an interpreter of the current model made
        (the first one after a model swap builds it: ~170 ms, on a pool thread)."""
        if self._in_flight != 1:  # an int, read whole (written under the lock)
            return False
        if self.others() + 1 - own_tasks > 0:
            return False
        source = self.source()
        return source is not None and any(w.origin is source for w in self.workers)

    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the pool's :attr:`threads` (each ``nice`` below the
        pipeline; the other admitted requests wait for one, their wait counted in ``queued``),
        awaited from the event loop."""
        if self._executor is None:
            from ..common.asgi_thread import lower_thread_priority

            self._executor = ThreadPoolExecutor(
                self.threads, thread_name_prefix="http-infer",
                initializer=lower_thread_priority, initargs=(self.nice,))
        submitted = time.perf_counter()

        def started() -> Any:
            self._waited.s = time.perf_counter() - submitted
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(self._executor, started)

    def close(self) -> None:
        """End the pool's threads (a running inference finishes first, in the background)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def admit(self) -> None:
        """Take a slot (release with :meth:`release`); :class:`Busy` when none is free."""
        with self._lock:
            free = self._in_flight < self.max_pending
            if free:
                self._in_flight += 1
        if not free:
            self.count("busy")
            if self._was_capped and self.cap is not None:
                wait = self.max_pending * self._cost_s / self.cap.duty
                raise Busy(f"{self.max_pending} inference requests are waiting under the duty "
                           f"cap (http.infer_duty = {self.cap.duty:g} of a core while the camera "
                           "pipeline is contended); retry later",
                           min(60, max(1, math.ceil(wait))))
            raise Busy(f"{self.max_pending} inference requests are running or waiting "
                       "(http.max_infer); retry shortly")

    def release(self) -> None:
        with self._lock:
            if self._in_flight <= 0:
                raise RuntimeError("InferPool.release() without an admitted request")
            self._in_flight -= 1

    def run_bytes(self, data: bytes, threshold: float | None = None,
                  top_k: int | None = None, where: str = "body") -> dict[str, Any]:
        """Decode ``data`` (BodyError when it is no image), run the model, the reply body."""
        t0 = time.perf_counter()
        image = decode_image(data, where)
        decode_s = time.perf_counter() - t0
        out = self.run(image, threshold, top_k)
        out["latency_ms"]["decode"] = round(decode_s * 1000, 3)
        return out

    def run(self, image: np.ndarray, threshold: float | None = None,
            top_k: int | None = None) -> dict[str, Any]:
        source = self.source()
        if source is None:
            raise Unavailable("no model loaded yet")
        t_wait = time.perf_counter()
        worker = self._free.get()
        try:
            waited = getattr(self._waited, "s", 0.0)  # for one of the pool's threads (submit)
            self._waited.s = 0.0
            queued_s = time.perf_counter() - t_wait + waited
            runner = worker.runner_for(source, threshold, top_k)
            result, times = runner.run(image)
            backend, delegate, about = worker.describe(runner.model)
        finally:
            self._free.put(worker)
        h, w = image.shape[:2]
        return {
            "backend": backend,
            "delegate": delegate,
            "model": dict(about),
            "image": {"width": w, "height": h},
            "latency_ms": {
                "total": round(times.total * 1000, 3),
                "preprocess": round(times.preprocess * 1000, 3),
                "invoke": round(times.invoke * 1000, 3),
                "postprocess": round(times.postprocess * 1000, 3),
                "queued": round(queued_s * 1000, 3),
            },
            **result.to_json(),
        }
