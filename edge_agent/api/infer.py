"""``POST /v1/infer``'s engine: its own interpreters, bounded admission, per-request decoders.

The camera's pipeline keeps its interpreter to itself: each worker here holds a clone of the
pipeline's current Runner (its own interpreter of the same model, same preprocessing and
decoder), made again when the pipeline swaps models (an update, a rollback). At most
``max_pending`` requests are admitted (running or waiting for a worker); one more is
:class:`Busy` (429) at once, never queued without bound. ``?threshold=`` / ``?top_k=`` get a
Runner with those decoder settings over the same interpreter (a few kept per worker). The
images are decoded and run on the pool's own threads (:meth:`InferPool.submit`: one per
admission slot, made when first needed), which run ``nice`` lower (``http.nice``, 5): under CPU
contention the camera's pipeline keeps its share.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .bodies import decode_image

MAX_VARIANTS = 8  # decoder settings kept per worker


class Busy(Exception):
    """Every /v1/infer slot is taken (429)."""


class Unavailable(Exception):
    """No model to run (503): the pipeline has none loaded."""


class _Worker:
    def __init__(self) -> None:
        self.origin: Any = None  # the pipeline Runner this worker's clone is of
        self.runner: Any = None
        self.variants: OrderedDict[tuple[float | None, int | None], Any] = OrderedDict()

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


class InferPool:
    """``workers`` interpreters for API callers; ``source()`` is the pipeline's Runner now."""

    def __init__(self, source: Callable[[], Any], workers: int = 1, max_pending: int = 4,
                 nice: int = 0) -> None:
        self.source = source
        self.nice = nice
        self.max_pending = max(max_pending, workers)
        self._slots = threading.BoundedSemaphore(self.max_pending)
        self._free: queue.Queue[_Worker] = queue.Queue()
        for _ in range(workers):
            self._free.put(_Worker())
        self._lock = threading.Lock()
        self.counts = {"ok": 0, "busy": 0, "bad_input": 0, "failed": 0}
        self._executor: ThreadPoolExecutor | None = None

    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the pool's threads (as many as admission slots, each
        ``nice`` below the pipeline), awaited from the event loop."""
        if self._executor is None:
            from ..common.asgi_thread import lower_thread_priority

            self._executor = ThreadPoolExecutor(
                self.max_pending, thread_name_prefix="http-infer",
                initializer=lower_thread_priority, initargs=(self.nice,))
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """End the pool's threads (a running inference finishes first, in the background)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def admit(self) -> None:
        """Take a slot (release with :meth:`release`); :class:`Busy` when none is free."""
        if not self._slots.acquire(blocking=False):
            self.count("busy")
            raise Busy(f"{self.max_pending} inference requests are running or waiting "
                       "(http.max_infer); retry shortly")

    def release(self) -> None:
        self._slots.release()

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
            queued_s = time.perf_counter() - t_wait
            runner = worker.runner_for(source, threshold, top_k)
            result, times = runner.run(image)
        finally:
            self._free.put(worker)
        model = runner.model
        h, w = image.shape[:2]
        return {
            "backend": model.backend.label,
            "delegate": getattr(model, "delegate", None),
            "model": {"file": getattr(getattr(model, "path", None), "name", None),
                      "sha256": getattr(model, "sha256", None)},
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
