"""The Agent: builds the parts from Config, runs them, stops them in a fixed order.

Other parts (MQTT, updates, bridge, ops) plug in as :class:`~edge_agent.component.Component`
objects; :mod:`edge_agent.app` (the composition root) builds and wires them, so this module
imports none of them.

Lifecycle of :meth:`Agent.run` (reads top to bottom, like uvicorn's ``Server._serve``):

1. build: boot model (``updates.boot.choose_model``) -> Runner (through ``loader``, the one
   RunnerLoader); camera source (a malformed source, or a local file or folder without a
   readable frame, is a :class:`ConfigError` naming ``camera.source``; a live camera that does
   not answer yet is not: the reader keeps reconnecting and the camera's health says
   ``reconnecting``); Pipeline.
2. start: every component's ``start(agent)`` in order, then every ``on_started()`` (MQTT
   connects: every command is registered by then), then the pipeline.
3. main loop: the heartbeat every ``metrics.interval_s``: build the snapshot, every component's
   ``contribute(snapshot)``, then every component's ``on_tick(snapshot)``. Ends on
   :meth:`Agent.request_stop` (SIGTERM/SIGINT, a component, ``--duration``), when ``--frames``
   frames were processed or a finite source ended. Between heartbeats the main thread sleeps
   until the next one, woken early only by a stop request or the pipeline's ``done``.
4. shutdown (time limit ``SHUTDOWN_S``): pipeline stop, a last heartbeat for the partial window
   (no metrics record is lost), components' ``stop()`` in reverse order, each time-limited.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from .. import __version__
from ..camera import Backoff, CameraReader, LatestFrameSlot, default_pace, open_source
from ..component import Component
from ..config import Config
from ..errors import ComponentError, ConfigError, EdgeAgentError, FrameError, SourceError
from ..telemetry import ResourceSampler, build_snapshot, summarize
from ..telemetry.cgroup import available_cores
from .pipeline import FrameResult, JsonLinesSink, Pipeline, tune_process
from .runner_loader import RunnerLoader
from .schedule import choose_schedule

log = logging.getLogger("edge_agent.agent")

SHUTDOWN_S = 1.8  # everything stops within this; SIGTERM -> exit well within 2 s
PIPELINE_STOP_S = 0.8
MAIN_WAIT_MAX_S = 1.0


def _call_with_limit(fn: Callable[[], None], limit: float, what: str) -> bool:
    """Run ``fn`` in a helper thread; False (logged) if it raised or outlived ``limit``."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # reported below, never propagated into shutdown
            errors.append(exc)

    t = threading.Thread(target=target, name=f"stop-{what}", daemon=True)
    t.start()
    t.join(max(limit, 0.0))
    if t.is_alive():
        log.warning("%s did not stop within %.1f s; left behind", what, limit)
        return False
    if errors:
        log.warning("%s failed while stopping: %r", what, errors[0])
        return False
    return True


def process_age() -> float:
    """Seconds since this process started (from /proc: 10 ms resolution; psutil's
    ``create_time`` rounds the boot time to whole seconds)."""
    import os

    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - psutil.Process().create_time()


def _check_source(source: Any, tries: int = 16) -> None:
    """A wrong ``camera.source`` fails at start; a camera that is not there yet does not.

    Live sources (a V4L2 device, an rtsp/http stream) are only checked for their form
    (``check_form``): the reader opens them and keeps retrying, so a camera that boots after the
    board is picked up when it appears. Local files and folders are opened and one frame read.
    """
    try:
        if source.live:
            source.check_form()
            return
        try:
            source.open()
            for _ in range(tries):
                try:
                    if source.read() is None:
                        raise SourceError(f"{source.name}: no frame in the source")
                    return
                except FrameError:
                    continue  # e.g. a non-image in a folder: skipped at run time too
            raise SourceError(f"{source.name}: no readable frame in the first {tries}")
        finally:
            source.close()
    except SourceError as exc:
        raise ConfigError(f"camera.source: {exc}") from None


class Agent:
    """Builds the pipeline from ``config``, runs the heartbeat and the components.

    Attributes other parts use: ``config``, ``config_path`` (the file it came from, or None),
    ``pipeline`` (after build), ``components``,
    ``loader`` (the RunnerLoader), ``boot`` (which model and why),
    ``last_snapshot``; :meth:`add_component` before :meth:`run`, :meth:`request_stop` any time.
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        components: Iterable[Component] = (),
        loader: RunnerLoader | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.components: list[Component] = list(components)
        self.pipeline: Pipeline | None = None
        self.loader = loader if loader is not None else RunnerLoader(config)
        self.boot: Any = None
        self.model_info: dict[str, Any] = {}
        self.last_snapshot: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self.clock = clock
        self.wall = wall
        self._stop = threading.Event()
        self._wake = threading.Event()  # the main loop: stop requested or the pipeline done
        self._started = False
        self._running: list[Component] = []
        self._sampler: ResourceSampler | None = None
        self._prev_counters: dict[str, Any] | None = None
        self._window_start = 0.0
        self._t_start = 0.0
        self._t_first_result: float | None = None
        self._waits = 0
        self._progress_lock = threading.Lock()

    # -- public ------------------------------------------------------------------------------
    def add_component(self, component: Component) -> None:
        if self._started:
            raise RuntimeError("add_component must be called before the agent starts")
        self.components.append(component)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the agent to shut down (thread-safe, idempotent); the first reason is kept."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> int:
        """A counter for the progress-gated watchdogs (sd_notify, the board's): it moves with
        every processed frame and, while the camera reader is legitimately waiting for its
        source (:meth:`CameraReader.waiting`), at every call. Waiting for a camera that is not
        there yet is not a stall of the agent; a stuck pipeline or a stuck reader stops it."""
        pipeline = self.pipeline
        if pipeline is None:
            return 0
        processed = int(pipeline.counters().get("processed") or 0)
        if pipeline.reader.waiting():
            with self._progress_lock:
                self._waits += 1
        return processed + self._waits

    # -- build -------------------------------------------------------------------------------
    def build(self, *, frames: int | None = None) -> Pipeline:
        """Load the boot model and check the camera source; raises ConfigError/ModelError on
        bad input (a live camera that is not there yet is no error: see :func:`_check_source`)."""
        from ..updates.boot import choose_model

        cfg = self.config
        boot = self.boot = choose_model(cfg)
        runner_factory = self.loader.factory(boot.path, boot.description)

        schedule = choose_schedule(cfg.model.threads, available_cores(), cfg.pipeline.schedule)
        source = open_source(cfg.camera)
        # shown in status and metrics; at INFO it broke the one-line error of a bad source
        log.debug("pipeline schedule %s (%s)", schedule.schedule, schedule.reason)
        default_pace(source, cfg.camera.policy)
        source.decode_threads = schedule.decode_threads
        _check_source(source)
        on_demand = cfg.camera.policy == "all" and not source.live and not source.pace_fps
        slot = LatestFrameSlot(cfg.camera.policy, on_demand=on_demand)
        reader = CameraReader(
            source,
            slot,
            backoff=Backoff(cfg.camera.reconnect_initial_s, cfg.camera.reconnect_max_s),
        )
        pipeline = Pipeline(
            runner_factory,
            reader,
            limit=frames,
            model_name=boot.path.name,
            snapshot_ring=cfg.pipeline.snapshot_ring,
            schedule=schedule,
            economy=cfg.pipeline.economy,
        )
        model = pipeline.runner.model
        from ..inference.compiled import engine_info

        self.model_info = {
            "name": boot.path.stem,
            "file": boot.path.name,
            "sha256": getattr(model, "sha256", None),
            "source": boot.source,
            "backend": getattr(getattr(model, "backend", None), "name", None),
            "delegate": getattr(model, "delegate", None),
            **engine_info(model),
            "threads": cfg.model.threads,
        }
        if cfg.pipeline.stdout_jsonl:
            pipeline.add_sink(JsonLinesSink())
        pipeline.add_sink(self._dispatch_result)
        self.pipeline = pipeline
        return pipeline

    def _dispatch_result(self, fr: FrameResult) -> None:
        if self._t_first_result is None and fr.ok:
            self._t_first_result = process_age()
        for c in self.components:
            try:
                c.on_result(fr)
            except Exception as exc:
                log.warning("component %s on_result failed: %r", c.name, exc)

    # -- heartbeat ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Build this window's snapshot and start the next window."""
        assert self.pipeline is not None
        if self._sampler is None:
            self._sampler = ResourceSampler(self.config.device.state_dir)
        now = self.clock()
        counters = self.pipeline.counters()
        snap = build_snapshot(
            agent_version=__version__,
            window_start=self._window_start,
            window_end=now,
            wall_time=self.wall(),
            counters=counters,
            previous=self._prev_counters,
            latencies=self.pipeline.latencies.roll(),
            resources=self._sampler.sample(),
            camera=self.pipeline.reader.stats(),
            model=dict(self.model_info),
            pipeline={
                **self.pipeline.schedule_info(),
                "invoke_busy": round(self.pipeline.invoke_busy(), 3),
                "invoke_starved": round(self.pipeline.invoke_starved(), 3),
            },
        )
        self._prev_counters = counters
        self._window_start = now
        return snap

    def tick(self) -> dict[str, Any]:
        snap = self.snapshot()
        for c in self._running:
            try:
                c.contribute(snap)
            except Exception as exc:
                log.warning("component %s contribute failed: %r", c.name, exc)
        for c in self._running:
            try:
                c.on_tick(snap)
            except Exception as exc:
                log.warning("component %s on_tick failed: %r", c.name, exc)
        self.last_snapshot = snap
        return snap

    # -- run ---------------------------------------------------------------------------------
    def run(self, duration: float | None = None, frames: int | None = None) -> dict[str, Any]:
        """Build (unless built), start, heartbeat until stopped, shut down; returns a summary."""
        self._t_start = self.clock()
        pipeline = self.pipeline or self.build(frames=frames)
        if frames is not None:
            pipeline.limit = frames
        restore = self._install_signals()
        untune = tune_process()
        try:
            self._started = True
            self._sampler = ResourceSampler(self.config.device.state_dir)  # primes CPU %
            for c in self.components:
                try:
                    c.start(self)
                    self._running.append(c)
                except EdgeAgentError:
                    raise
                except Exception as exc:  # one line for the technician, not a traceback
                    raise ComponentError(f"component {c.name} failed to start: {exc}") from exc
            for c in self._running:  # every part is up: now connect to the outside
                try:
                    c.on_started()
                except EdgeAgentError:
                    raise
                except Exception as exc:
                    raise ComponentError(f"component {c.name} failed to start: {exc}") from exc
            self._window_start = self.clock()
            pipeline.start()
            self._main_loop(pipeline, duration)
        finally:
            summary = self._shutdown(pipeline)
            untune()
            restore()
        return summary

    def _main_loop(self, pipeline: Pipeline, duration: float | None) -> None:
        interval = self.config.metrics.interval_s
        t0 = self.clock()
        next_tick = t0 + interval
        deadline = None if duration is None else t0 + duration
        pipeline.done.notify(self._wake.set)
        while not self._stop.is_set():
            self._wake.clear()  # before the checks: a stop or done from now on ends the wait
            now = self.clock()
            if deadline is not None and now >= deadline:
                self.request_stop("duration reached")
                break
            if pipeline.done.is_set():
                limit = pipeline.limit
                reached = limit is not None and pipeline.counters()["processed"] >= limit
                self.request_stop("frame limit reached" if reached else "source ended")
                break
            if now >= next_tick:
                self.tick()
                next_tick = max(next_tick + interval, now + interval / 2)
            wake = min(next_tick, deadline if deadline is not None else next_tick)
            # no polling: stop and done wake it; the cap only bounds a wait on a clock gone wrong
            self._wake.wait(min(max(wake - now, 0.0), MAIN_WAIT_MAX_S))

    def _shutdown(self, pipeline: Pipeline) -> dict[str, Any]:
        t0 = time.monotonic()
        if not pipeline.stop(timeout=PIPELINE_STOP_S):
            log.warning("pipeline threads did not stop within %.1f s", PIPELINE_STOP_S)
        try:
            self.tick()  # the last, partial window
        except Exception as exc:
            log.warning("final metrics snapshot failed: %r", exc)
        for c in reversed(self._running):  # only those that started, last started first
            left = SHUTDOWN_S - (time.monotonic() - t0)
            _call_with_limit(c.stop, max(left, 0.05), f"component {c.name}")
        seconds = self.clock() - self._t_start
        alive = [
            t.name for t in threading.enumerate()
            if t is not threading.current_thread() and t.is_alive()
            and not getattr(t, "outlives_agent", False)  # e.g. the stderr relay of the CLI
        ]
        if alive:
            log.warning("threads still running after shutdown: %s", ", ".join(alive))
        first = self._t_first_result  # seconds from process start, not from run()
        return {
            "reason": self.stop_reason,
            "shutdown_s": time.monotonic() - t0,
            "threads_left": alive,
            "seconds": seconds,
            "first_result_s": first,
            "counters": pipeline.counters(),
            "latency_ms": summarize(pipeline.latencies.total()),
            "camera": pipeline.reader.stats(),
            "model": dict(self.model_info),
            "pipeline": pipeline.schedule_info(),
        }

    def _install_signals(self) -> Callable[[], None]:
        """SIGTERM/SIGINT -> graceful stop; a second one -> KeyboardInterrupt. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        originals: dict[int, Any] = {}

        def handler(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stop.is_set():
                for s, h in originals.items():
                    signal.signal(s, h)
                raise KeyboardInterrupt(f"second {name}")
            log.info("%s received: stopping", name)
            # not request_stop() here: the handler runs on the main thread between two
            # bytecodes, possibly inside _wake.wait() holding that Event's lock, and setting
            # the Event from here would wait on it forever (seen once in CI: a SIGTERM hung)
            threading.Thread(target=self.request_stop, args=(name,), name="signal-stop",
                             daemon=True).start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            originals[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)

        def restore() -> None:
            for s, h in originals.items():
                signal.signal(s, h)

        return restore
