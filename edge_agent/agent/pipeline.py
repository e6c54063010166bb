"""capture -> preprocess -> invoke -> postprocess -> sinks, on one of two schedules.

One pipeline = one inference worker = one interpreter. The ``camera-reader`` thread
(:class:`~edge_agent.camera.CameraReader`) decodes frames into the
:class:`~edge_agent.camera.LatestFrameSlot`; what follows depends on the schedule
(:mod:`.schedule` chooses it from the interpreter's threads and the usable CPUs):

``overlap`` (a core is free beside the interpreter) — the stages overlap:

* ``pipeline-prep`` takes a frame and preprocesses it into a staging buffer shaped like the
  model input, *while the previous frame is being invoked*. It starts "just in time": when the
  worker begins an invoke, prep waits until ``invoke estimate - preprocess estimate - margin``
  has passed, so the next input is ready when the invoke ends and the frame it comes from is as
  fresh as possible (low end-to-end latency at full throughput).
* ``pipeline-infer`` copies the staging buffer into the interpreter's input (one memcpy),
  invokes (the interpreter releases the GIL, so the other threads run meanwhile) and copies the
  outputs out.
* ``pipeline-post`` decodes the outputs into a Result and hands a :class:`FrameResult` to every
  sink (JSON lines, snapshot ring, the Agent's components).

``serial`` (the interpreter's threads take every core) — one ``pipeline-worker`` thread
preprocesses straight into the interpreter's input, invokes, decodes the outputs and calls the
sinks. A source read on demand (a file under policy ``all``) is asked for the next frame as
this one is picked, so it is decoded while this one is processed (the reader ahead by one
frame; the frame's age then includes that wait). Measured on MobileNetV2 int8 at threads = 2
on 2 cores (4 rounds, ``benchmarks/pipeline.py``'s videos): pipeline/naive 1.04 (cheap clip)
and 0.96 (costly) with e2e - invoke 8.6 / 7.0 ms, against 0.89 / 0.86 and 1.4 / 1.5 ms when
the next frame was asked for after the invoke, and 0.85 / 0.81 when asked for just in time
(decoded during the end of the invoke). A live camera is read as it delivers, whatever the
schedule: this only changes files and folders read flat out.

Threads sleep when there is nothing to do: every wait is woken by the event it waits for (a
frame, a staged input, outputs, the end of the source, :meth:`Pipeline.stop`); the timeouts
only bound a wait, they are no polling period.

Counters: ``captured`` = frames the reader handed to the slot; ``processed`` = frames that
went through every stage; ``dropped`` = frames discarded (``stale``: replaced in the slot under
policy ``latest``; ``error``: a stage raised; ``swap``: lost to a model swap; ``shutdown``: in
flight at stop). ``captured == processed + dropped + in_flight`` at every moment and
``in_flight == 0`` after :meth:`Pipeline.stop`.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..camera import CameraReader, Frame, LatestFrameSlot
from ..common.throttle import ThrottledLog, cause_of
from ..errors import PipelineError
from ..telemetry.latency import StageLatencies
from .economy import WINDOW_S as ECONOMY_WINDOW_S
from .economy import Economy, Window
from .schedule import SCHEDULES, Schedule, ScheduleChoice
from .sinks import FrameResult, JsonLinesSink, Sink, SnapshotRing

log = logging.getLogger("edge_agent.pipeline")

JIT_MARGIN_S = 0.0008  # lower bound of the adaptive margin (see _Estimate.margin_s)
JIT_MARGIN_MAX_S = 0.02
WAIT_S = 0.25  # the longest a thread sleeps before it looks at the stop flag again
DROP_REASONS = ("stale", "error", "swap", "shutdown")

__all__ = [
    "FrameResult", "JsonLinesSink", "Pipeline", "ScheduleChoice", "Sink", "SnapshotRing",
    "tune_process",
]


class RunnerLike(Protocol):
    """What the pipeline needs from :class:`edge_agent.inference.Runner`."""

    model: Any
    preprocessor: Any
    decoder: Any




@dataclass
class _Staged:
    frame: Frame
    runner: Any
    buffer: np.ndarray
    transform: Any
    t_pick: float
    pre_s: float
    t_woke: float = 0.0  # when prep woke from its just-in-time wait (0: it did not wait)


@dataclass
class _Invoked:
    frame: Frame
    runner: Any
    transform: Any
    outputs: list[np.ndarray]
    times: dict[str, float]


@dataclass
class _Estimate:
    """Moving averages used to start preprocessing just in time, and a self-tuning margin.

    When the infer thread had to wait for its next input (prep started too late: the machine
    is busier than the averages say), the margin grows by that wait; otherwise it decays
    slowly back towards ``JIT_MARGIN_S``. So under load the pipeline trades a little latency
    for never starving the interpreter.
    """

    pre_s: float = 0.0
    invoke_s: float = 0.0
    margin_s: float = JIT_MARGIN_S
    samples: int = 0

    def update(self, pre_s: float, invoke_s: float, late_s: float) -> None:
        a = 0.2 if self.samples else 1.0
        self.pre_s += a * (pre_s - self.pre_s)
        self.invoke_s += a * (invoke_s - self.invoke_s)
        if late_s > 0.0001:
            self.margin_s = min(JIT_MARGIN_MAX_S, self.margin_s + late_s)
        else:
            self.margin_s = max(JIT_MARGIN_S, self.margin_s * 0.97)
        self.samples += 1


@dataclass
class Counters:
    captured: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0
    in_flight: int = 0
    dropped_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    swaps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "captured": self.captured,
            "processed": self.processed,
            "dropped": self.dropped,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "dropped_by": dict(self.dropped_by),
            "swaps": self.swaps,
        }


class DoneEvent(threading.Event):
    """``done``: a threading.Event that also calls the callbacks given to :meth:`notify` when
    it is set (the Agent's main loop sleeps until then instead of polling it)."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []

    def notify(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)
        if self.is_set():
            callback()

    def set(self) -> None:
        super().set()
        for callback in list(self._callbacks):
            callback()


class Pipeline:
    """One worker: a reader and, by ``schedule``, a prep, an infer and a post thread
    (``overlap``) or one worker thread (``serial``); see the module doc.

    ``schedule``: ``overlap``, ``serial`` or a :class:`ScheduleChoice` (kept for
    :meth:`stats`). ``runner_factory()`` builds the Runner (one interpreter) this pipeline uses;
    :meth:`swap` replaces it between two frames. ``limit``: stop taking frames after that
    many (``--frames N``); :attr:`done` is set when they are all processed, when a finite
    source ended and everything taken was processed, or at :meth:`stop`.
    """

    def __init__(
        self,
        runner_factory: Callable[[], Any],
        reader: CameraReader,
        *,
        sinks: Sequence[Sink] = (),
        limit: int | None = None,
        model_name: str = "",
        clock: Callable[[], float] = time.monotonic,
        just_in_time: bool = True,
        keep_images: bool = True,
        snapshot_ring: int = 0,
        schedule: Schedule | ScheduleChoice = "overlap",
        economy: str = "off",
    ) -> None:
        if isinstance(schedule, ScheduleChoice):
            self.schedule_choice: ScheduleChoice | None = schedule
            schedule = schedule.schedule
        else:
            self.schedule_choice = None
        if schedule not in SCHEDULES:
            raise PipelineError(f"unknown pipeline schedule {schedule!r}; use overlap or serial")
        self.schedule: Schedule = schedule
        self.reader = reader
        self.slot: LatestFrameSlot = reader.slot
        self.sinks: list[Sink] = list(sinks)
        self.snapshots = SnapshotRing(snapshot_ring)
        if snapshot_ring and keep_images:
            self.sinks.insert(0, self.snapshots)
        self.limit = limit
        self.model_name = model_name
        self.clock = clock
        self.just_in_time = just_in_time
        self.keep_images = keep_images
        self.latencies = StageLatencies()
        self.done = DoneEvent()
        self._runner = runner_factory()
        self._buffers: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._staged: queue.Queue[_Staged | None] = queue.Queue(maxsize=1)
        self._invoked: queue.Queue[_Invoked | None] = queue.Queue(maxsize=2)
        self._taken_event = threading.Event()  # infer took the staged item (an invoke begins)
        self._t_invoke_start = 0.0
        self._estimate = _Estimate()
        self._frame_gap = 0.0  # moving average of the capture-time gap between taken frames
        self._last_capture = 0.0
        self._picked = 0
        self._prep_finished = threading.Event()
        self._infer_finished = threading.Event()
        self._c = Counters()
        self._threads: list[threading.Thread] = []
        self._sink_errors = 0
        self._log = ThrottledLog(log)  # a stage or sink failing on every frame
        self._first_invoke = 0.0
        self._last_invoke_end = 0.0
        self._invoke_total = 0.0
        self._starved_total = 0.0
        self._min_interval = 0.0  # a frame-rate cap (set_rate_cap): seconds between two picks
        self._last_pick = 0.0
        # economy (.economy): touched only by the thread that invokes, but for the swap flag
        self._economy_setting = economy
        self._economy = Economy(_full_threads(self._runner), economy)  # type: ignore[arg-type]
        self._eco_swapped = False
        self._eco_t0 = 0.0
        self._eco_frames = 0
        self._eco_busy = 0.0
        self._eco_invoke0 = 0.0
        self._eco_stale0 = 0
        self._eco_builder: threading.Thread | None = None
        self._held: _Invoked | None = None  # overlap: outputs handed to post at the next invoke
        self._eco_failed: tuple[Any, str] | None = None  # the builder's model, why it failed

    # -- public API --------------------------------------------------------------------------
    @property
    def runner(self) -> Any:
        return self._runner

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("pipeline already started")
        loops: tuple[tuple[str, Callable[[], None]], ...] = (
            (("pipeline-worker", self._serial_loop),)
            if self.schedule == "serial"
            else (
                ("pipeline-post", self._post_loop),
                ("pipeline-infer", self._infer_loop),
                ("pipeline-prep", self._prep_loop),
            )
        )
        for name, target in loops:
            t = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(t)
            t.start()
        self.reader.start()

    def stop(self, timeout: float = 1.5) -> bool:
        """Stop everything; True if every thread ended within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self.slot.close()
        self._taken_event.set()  # wake prep waiting for infer to take its input
        for q in (self._staged, self._invoked):
            try:  # wake a thread waiting on an empty queue (a full one wakes by itself)
                q.put_nowait(None)
            except queue.Full:
                pass
        ok = self.reader.stop(timeout=max(0.05, (deadline - time.monotonic()) / 2))
        for t in [*self._threads, *([self._eco_builder] if self._eco_builder else [])]:
            t.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not t.is_alive()
        self.slot.discard()  # a frame nobody took: the slot counts it as a stale drop
        self.done.set()
        self._log.flush(final=True)
        return ok

    def swap(self, runner: Any) -> Any:
        """Use ``runner`` from the next frame on; returns the previous runner.

        A frame already preprocessed for the old model is preprocessed again for the new one
        (never dropped); :meth:`counters` ``swaps`` counts swaps, ``dropped_by["swap"]`` any
        frame that could not be carried over.
        """
        if runner is None:
            raise PipelineError("swap needs a runner")
        with self._lock:
            old, self._runner = self._runner, runner
            self._c.swaps += 1
            self._estimate = _Estimate()
            self._eco_swapped = True
        log.info("model swapped in between two frames")
        return old

    def set_rate_cap(self, fps: float | None) -> None:
        """Take at most ``fps`` frames per second (None: as many as come); frames the camera
        delivers meanwhile are replaced in the slot (``dropped_by["stale"]``)."""
        self._min_interval = 1.0 / fps if fps else 0.0

    @property
    def rate_cap(self) -> float | None:
        return 1.0 / self._min_interval if self._min_interval else None

    def _wait_rate_cap(self) -> None:
        """Under a frame-rate cap: wait until the next frame may be taken."""
        if self._min_interval:
            self._stop.wait(max(0.0, self._last_pick + self._min_interval - self.clock()))

    def invoke_busy(self) -> float:
        """Share of the time since the first invoke that the interpreter spent invoking (1.0:
        the pipeline kept it busy all the time)."""
        with self._lock:
            first, last, busy = self._first_invoke, self._last_invoke_end, self._invoke_total
        return busy / (last - first) if last > first else 0.0

    def invoke_starved(self) -> float:
        """Share of that time the infer thread waited for its next input (prep/camera too
        slow or late). ``1 - busy - starved`` is handover overhead (copies, GIL, scheduling)."""
        with self._lock:
            first, last, starved = self._first_invoke, self._last_invoke_end, self._starved_total
        return starved / (last - first) if last > first else 0.0

    def latest_snapshot(self) -> bytes | None:
        """JPEG of the latest annotated frame (None: ring off or no frame yet)."""
        return self.snapshots.latest_jpeg()

    def save_snapshots(self, directory: Path, last: int | None = None) -> list[Path]:
        """Write the ring's frames, annotated, as JPEGs into ``directory``."""
        return self.snapshots.save(directory, last=last)

    def counters(self) -> dict[str, Any]:
        with self._lock:
            c = self._c
            c.captured = self.slot.put_count
            c.dropped_by["stale"] = self.slot.dropped
            c.dropped = sum(c.dropped_by.values())
            c.in_flight = c.captured - c.processed - c.dropped
            return c.as_dict()

    def stats(self) -> dict[str, Any]:
        """Counters, camera state and the estimates the prep thread schedules with."""
        return {
            "schedule": self.schedule_info(),
            "counters": self.counters(),
            "camera": self.reader.stats(),
            "invoke_busy": round(self.invoke_busy(), 4),
            "invoke_starved": round(self.invoke_starved(), 4),
            "sink_errors": self._sink_errors,
            "estimate_ms": {
                "preprocess": round(self._estimate.pre_s * 1000, 3),
                "invoke": round(self._estimate.invoke_s * 1000, 3),
            },
        }

    def schedule_info(self) -> dict[str, Any]:
        """The schedule in force (and, when it was chosen, the setting, threads, CPUs, why),
        and the economy (:mod:`.economy`): the interpreter threads in use and why."""
        info: dict[str, Any] = (
            self.schedule_choice.to_json() if self.schedule_choice is not None
            else {"schedule": self.schedule}
        )
        info["economy"] = self._economy.to_json()
        return info

    # -- economy (.economy) ------------------------------------------------------------------
    def _economy_frame(self, model: Any, busy_s: float) -> None:
        """Called by the invoking thread after each frame: account the window, decide at its
        end, and switch the interpreter's threads (between frames, on this thread)."""
        eco = self._economy
        if self._eco_swapped:
            self._eco_swapped = False
            eco.threads = _full_threads(self._runner)
            eco.setting = self._economy_setting  # type: ignore[assignment]
            now = self.clock()
            eco.reset(now)
            self._eco_window(now)
            return
        if not eco.enabled:
            return
        now = self.clock()
        if not self._eco_t0:  # the first frame opens the first window
            self._eco_window(now)
            return
        self._eco_frames += 1
        self._eco_busy += busy_s
        if now - self._eco_t0 < ECONOMY_WINDOW_S:
            return
        if not getattr(model, "economy_allowed", True):
            eco.hold("1 thread not used while the model is under trial")
        else:
            with self._lock:
                invoke_total = self._invoke_total
            stale = self.slot.dropped
            w = Window(now - self._eco_t0, self._eco_frames, self._eco_busy,
                       invoke_total - self._eco_invoke0, stale - self._eco_stale0)
            if eco.decide(w, now) is not None:
                log.info("pipeline economy: %s", eco.reason)
        self._eco_window(now)

    def _eco_window(self, now: float) -> None:
        self._eco_t0 = now
        self._eco_frames = 0
        self._eco_busy = 0.0
        with self._lock:
            self._eco_invoke0 = self._invoke_total
        self._eco_stale0 = self.slot.dropped

    def _economy_threads(self, model: Any) -> None:
        """Before a frame's input is written: run on the thread count economy wants (once its
        interpreter is built; it is built on a short-lived thread, never on this one)."""
        want = self._economy.threads_in_use
        if getattr(model, "threads_in_use", want) == want:
            return
        if want != getattr(model, "threads", want) and not model.prepared_threads(want):
            failed = self._eco_failed
            if failed is not None and failed[0] is model:  # the builder could not: off for
                why = failed[1]                            # this model, said once
                self._economy.disable(f"off: the {want}-thread interpreter failed: {why}")
                log.warning("pipeline economy off: %s", why)
                return
            builder = self._eco_builder
            if builder is None or not builder.is_alive():
                builder = threading.Thread(target=self._build_threads, args=(model, want),
                                           name="pipeline-economy", daemon=True)
                self._eco_builder = builder
                builder.start()
            return
        model.use_threads(want)

    def _build_threads(self, model: Any, threads: int) -> None:
        """The builder thread: only records a failure; the invoking thread acts on it."""
        try:
            model.prepare_threads(threads)
        except Exception as exc:
            self._eco_failed = (model, (str(exc).splitlines() or [type(exc).__name__])[0])

    # -- helpers -----------------------------------------------------------------------------
    def _drop(self, reason: str, error: bool = False) -> None:
        with self._lock:
            self._c.dropped_by[reason] += 1
            if error:
                self._c.errors += 1

    def _buffer(self, runner: Any) -> np.ndarray:
        with self._lock:
            pool = self._buffers.get(id(runner))
            if pool is None:
                if len(self._buffers) > 4:  # old runners' buffers: keep memory bounded
                    self._buffers.clear()
                spec = runner.model.inputs[0]
                pool = [np.zeros(tuple(spec.shape), dtype=spec.dtype) for _ in range(2)]
                self._buffers[id(runner)] = pool
        # two buffers: one being filled by prep, one waiting in the staged queue
        buf = pool.pop(0)
        pool.append(buf)
        return buf

    def _report_error(self, frame: Frame, stage: str, exc: BaseException, model: str) -> None:
        message = f"frame {frame.seq}: {stage} failed: {exc}"
        self._log.warn(f"{stage} failed: {cause_of(str(exc))}", message)
        fr = FrameResult(
            seq=frame.seq, wall_time=frame.wall_time, t_capture=frame.t_capture, result=None,
            timings={}, model=model, image=None, error=message,
        )
        self._emit(fr)

    def _emit(self, fr: FrameResult) -> None:
        for sink in list(self.sinks):
            try:
                sink(fr)
            except Exception as exc:  # a sink must never stop the pipeline
                self._sink_errors += 1
                self._log.warn(f"sink {sink!r}", f"result sink {sink!r} failed: {exc!r}")

    # -- stages shared by both schedules ----------------------------------------------------
    def _prepare(self, frame: Frame, runner: Any, t_pick: float, into: np.ndarray | None = None
                 ) -> tuple[Any, float] | None:
        """Preprocess ``frame`` for ``runner`` into ``into`` (default: the next staging buffer
        of :meth:`_buffer`); returns (transform, seconds), None when it failed (reported)."""
        try:
            buf = self._buffer(runner) if into is None else into
            transform = runner.preprocessor.run(frame.image, buf)
        except Exception as exc:
            self._drop("error", error=True)
            self._report_error(frame, "preprocess", exc, self.model_name)
            return None
        return transform, self.clock() - t_pick

    def _note_invoke(self, t0: float, t1: float) -> None:
        with self._lock:
            if not self._first_invoke:
                self._first_invoke = t0
            self._last_invoke_end = t1
            self._invoke_total += t1 - t0

    def _note_starved(self, seconds: float) -> None:
        if self._first_invoke:
            with self._lock:
                self._starved_total += seconds

    # -- overlap: prep -----------------------------------------------------------------------
    def _wait_until_due(self) -> float:
        """Wait for the moment to pick the next frame (just in time for the running invoke);
        returns when the wait ended, or 0.0 when there was nothing to wait for."""
        if not self.just_in_time or self._estimate.samples < 3:
            return 0.0
        lead = self._estimate.pre_s + self._estimate.margin_s
        if (
            not self.slot.on_demand
            and self.slot.pending == 0
            and self._frame_gap > self._estimate.invoke_s + lead
        ):
            # camera rate: no frame waits and the next comes after this invoke anyway, so
            # waiting would only cost a wake-up (the frame is taken the moment it arrives)
            return 0.0
        if self.slot.on_demand:
            lead += self.reader.read_s
        due = self._t_invoke_start + self._estimate.invoke_s - lead
        delay = due - self.clock()
        if delay <= 0:
            return 0.0
        self._stop.wait(delay)
        return self.clock()

    def _prep_loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self.limit is not None and self._picked >= self.limit:
                    break
                t_woke = self._wait_until_due()
                self._wait_rate_cap()
                self.slot.request()
                frame = self.slot.get(timeout=WAIT_S)
                if frame is None:
                    if self.slot.closed and self.slot.pending == 0:
                        break  # the source ended (or stop): nothing more will come
                    continue
                self._picked += 1
                t_pick = self._last_pick = self.clock()
                self._note_gap(frame.t_capture)
                runner = self._runner
                buf = self._buffer(runner)
                prepared = self._prepare(frame, runner, t_pick, buf)
                if prepared is None:
                    continue
                transform, pre_s = prepared
                staged = _Staged(frame, runner, buf, transform, t_pick, pre_s, t_woke)
                self._taken_event.clear()
                if not self._put(self._staged, staged):
                    self._drop("shutdown")
                    break
                # wait until infer takes it (its invoke starts) before preparing the next one
                while not self._taken_event.wait(WAIT_S):
                    if self._stop.is_set():
                        return
        finally:
            self._prep_finished.set()
            self._put(self._staged, None)  # infer: nothing more comes

    def _note_gap(self, t_capture: float) -> None:
        if self._last_capture:
            gap = t_capture - self._last_capture
            self._frame_gap += (0.2 if self._frame_gap else 1.0) * (gap - self._frame_gap)
        self._last_capture = t_capture

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    # -- overlap: infer ----------------------------------------------------------------------
    def _hand_over(self) -> None:
        """Give the held outputs (the previous invoke's) to post. Called right before the next
        invoke, which releases the GIL at once: post wakes into a free interpreter lock instead
        of taking it from this thread between two invokes; or before waiting for input, so a
        result never waits for the next frame."""
        held, self._held = self._held, None
        if held is not None and not self._put(self._invoked, held):
            self._drop("shutdown")

    def _infer_loop(self) -> None:
        try:
            while True:
                t_wait = self.clock()
                if self._held is not None and self._staged.empty():
                    self._hand_over()  # no input yet: post must not wait for it
                try:
                    st = self._staged.get(timeout=WAIT_S)
                except queue.Empty:
                    if self._stop.is_set() or self._prep_finished.is_set():
                        if self._staged.empty():
                            break
                    continue
                if st is None:  # prep finished (or stop): nothing more comes
                    break
                if self._stop.is_set():
                    self._drop("shutdown")
                    self._taken_event.set()
                    continue
                self._note_starved(self.clock() - t_wait)
                # the interpreter waited while prep was still holding back: prep was late
                late = max(0.0, st.t_woke - t_wait) if st.t_woke else 0.0
                invoked = self._invoke_staged(st, late)
                self._hand_over()  # when a stage failed before the invoke could
                self._held = invoked
        finally:
            self._hand_over()
            self._infer_finished.set()
            try:
                self._invoked.put(None, timeout=0.5)
            except queue.Full:
                pass

    def _invoke_staged(self, st: _Staged, late: float) -> _Invoked | None:
        runner = self._runner
        frame = st.frame
        pre_s = st.pre_s
        if runner is not st.runner:  # swapped since prep: prepare again for the new model
            t0 = self.clock()
            buf = self._buffer(runner)
            try:
                transform = runner.preprocessor.run(frame.image, buf)
            except Exception as exc:
                self._taken_event.set()
                self._drop("swap", error=True)
                self._report_error(frame, "preprocess after swap", exc, self.model_name)
                return None
            st = _Staged(frame, runner, buf, transform, st.t_pick, self.clock() - t0)
            pre_s += st.pre_s
        model = runner.model
        self._economy_threads(model)
        try:
            np.copyto(model.input_view(0), st.buffer)
            self._hand_over()
            self._t_invoke_start = t0 = self.clock()
            self._taken_event.set()
            model.invoke()
            t1 = self.clock()
            outputs = model.outputs_all()
        except Exception as exc:
            self._taken_event.set()
            self._drop("error", error=True)
            self._report_error(frame, "invoke", exc, self.model_name)
            return None
        self._note_invoke(t0, t1)
        self._estimate.update(st.pre_s, t1 - t0, late)
        self._economy_frame(model, t1 - t0)
        times = {"age": st.t_pick - frame.t_capture, "preprocess": pre_s, "invoke": t1 - t0}
        return _Invoked(frame, runner, st.transform, outputs, times)

    # -- overlap: post -----------------------------------------------------------------------
    def _post_loop(self) -> None:
        try:
            while True:
                try:
                    item = self._invoked.get(timeout=WAIT_S)
                except queue.Empty:
                    if self._infer_finished.is_set() and self._invoked.empty():
                        break
                    continue
                if item is None:
                    break
                self._post_one(item)
        finally:
            while True:  # anything left behind at a forced stop
                try:
                    left = self._invoked.get_nowait()
                except queue.Empty:
                    break
                if left is not None:
                    self._drop("shutdown")
            self.done.set()

    def _post_one(self, item: _Invoked) -> None:
        t0 = self.clock()
        try:
            result = item.runner.decoder.decode(item.outputs, item.transform)
        except Exception as exc:
            self._drop("error", error=True)
            self._report_error(item.frame, "postprocess", exc, self.model_name)
            return
        t1 = self.clock()
        times = item.times
        times["postprocess"] = t1 - t0
        times["e2e"] = t1 - item.frame.t_capture
        self.latencies.record_many(times)
        with self._lock:
            self._c.processed += 1
            processed = self._c.processed
        fr = FrameResult(
            seq=item.frame.seq,
            wall_time=item.frame.wall_time,
            t_capture=item.frame.t_capture,
            result=result,
            timings=times,
            model=self.model_name,
            image=item.frame.image if self.keep_images else None,
        )
        self._emit(fr)
        if self.limit is not None and processed >= self.limit:
            self.done.set()

    # -- serial: one worker ------------------------------------------------------------------
    def _serial_loop(self) -> None:
        requested = False  # a frame was asked of an on-demand reader and not taken yet
        try:
            while not self._stop.is_set():
                if self.limit is not None and self._picked >= self.limit:
                    break
                self._wait_rate_cap()
                if not requested:
                    self.slot.request()
                    requested = True
                t_wait = self.clock()
                frame = self.slot.get(timeout=WAIT_S)
                if frame is None:
                    if self.slot.closed and self.slot.pending == 0:
                        break  # the source ended (or stop): nothing more will come
                    continue
                requested = False
                self._picked += 1
                t_pick = self._last_pick = self.clock()
                self._note_starved(t_pick - t_wait)
                more = self.limit is None or self._picked < self.limit
                invoked = self._serial_one(frame, t_pick, more)
                requested = more
                if invoked is not None:
                    self._post_one(invoked)
                    self._economy_frame(invoked.runner.model, self.clock() - t_pick)
        finally:
            self._prep_finished.set()
            self._infer_finished.set()
            self.done.set()

    def _serial_one(self, frame: Frame, t_pick: float, more: bool) -> _Invoked | None:
        """Ask an on-demand reader for the next frame (``more``), preprocess into the
        interpreter's input, invoke, copy the outputs out."""
        runner = self._runner
        model = runner.model
        if more:
            self.slot.request()  # read ahead: decoded while this frame is processed
        self._economy_threads(model)
        view = model.input_view(0)
        prepared = self._prepare(frame, runner, t_pick, view)
        del view  # the runtime refuses to invoke while a view of its input is alive
        if prepared is None:
            return None
        transform, pre_s = prepared
        try:
            t0 = self.clock()
            try:
                model.invoke()
            finally:
                t1 = self.clock()
            outputs = model.outputs_all()
        except Exception as exc:
            self._drop("error", error=True)
            self._report_error(frame, "invoke", exc, self.model_name)
            return None
        self._note_invoke(t0, t1)
        self._estimate.update(pre_s, t1 - t0, 0.0)
        times = {"age": t_pick - frame.t_capture, "preprocess": pre_s, "invoke": t1 - t0}
        return _Invoked(frame, runner, transform, outputs, times)


def _full_threads(runner: Any) -> int:
    """The interpreter threads economy may take down to one: 1 (nothing to save) unless the
    model runs on the plain CPU interpreter with several threads."""
    model = getattr(runner, "model", None)
    if not getattr(model, "can_use_fewer_threads", False):
        return 1
    return int(getattr(model, "threads", 1))


def tune_process() -> Callable[[], None]:
    """Process settings the pipeline is built for; returns a function restoring the old ones.

    * ``cv2.setNumThreads(1)``: decode and preprocessing run on their own threads beside the
      interpreter's; OpenCV's worker pool would put extra work on the interpreter's core.
    * ``sys.setswitchinterval(1 ms)``: when ``invoke()`` returns, the infer thread waits for the
      GIL at most this long (default 5 ms) before the prep/reader threads must hand it over.
    """
    import cv2

    threads, interval = cv2.getNumThreads(), sys.getswitchinterval()
    cv2.setNumThreads(1)
    sys.setswitchinterval(0.001)

    def restore() -> None:
        cv2.setNumThreads(threads)
        sys.setswitchinterval(interval)

    return restore
