"""The activation side of an update: swap the new model in, watch its trial, commit or roll back.

The new model is loaded and warmed *beside* the running one (with the agent's one runner
loader, so the ``[model]`` overrides apply) and handed to ``agent.pipeline.swap`` to take over
between two frames. During the trial every invoke of the new model is timed and its outputs
checked for NaN/inf (:class:`WatchedModel`); :class:`.trial.TrialMonitor` decides. The watcher
sleeps until the monitor can decide (enough inferences, a failure, or the end of the window:
``WatchedModel`` signals the first two, the window's end is the wait's timeout), the camera
starts or stops delivering frames (the window stands still while it does not; the camera
reader's listener), an operator rollback or the agent's stop — it does not poll.

The command side (:mod:`.component`) runs these on its worker thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..component import AgentContext
from ..config import Config
from ..inference.compiled import engine_info
from . import rollout as R
from .cancel import Cancel
from .errors import NoPreviousVersion, UpdateError
from .manifest import MANIFEST_NAME, Shadow, parse_manifest
from .shadow import ShadowOutcome, ShadowRun
from .state import Deployment, Entry, abandon_trial, commit_trial, rollback
from .store import Store
from .trial import TrialMonitor, TrialPolicy, Verdict
from .updater import Updater

log = logging.getLogger("edge_agent.updates")

BASELINE_SAMPLES = 256


class WatchedModel:
    """A Model proxy: times ``invoke`` (into a bounded ring) and, while a trial monitor is
    attached, reports each latency and any non-finite output to it, and calls ``on_decided``
    once the monitor has what it needs for a verdict. Everything else is the wrapped model's.

    The pipeline's economy (one interpreter thread at camera rate) is not used while a trial
    runs (:attr:`economy_allowed`), and the ring keeps only invokes on the configured thread
    count: the next update's baseline and the trial are measured alike."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=BASELINE_SAMPLES)
        self.monitor: TrialMonitor | None = None
        self.on_decided: Callable[[], None] | None = None

    def _observed(self, mon: TrialMonitor) -> None:
        hook = self.on_decided
        if hook is not None and mon.decided(time.monotonic()):
            hook()

    def invoke(self) -> None:
        t0 = time.perf_counter()
        mon = self.monitor
        try:
            self.inner.invoke()
        except Exception as exc:
            if mon is not None:
                mon.record_error(str(exc))
                self._observed(mon)
            raise
        ms = (time.perf_counter() - t0) * 1000
        inner = self.inner
        if getattr(inner, "threads_in_use", 0) == getattr(inner, "threads", 0):
            self.latencies_ms.append(ms)
        if mon is not None:
            mon.record(ms)
            self._observed(mon)

    @property
    def economy_allowed(self) -> bool:
        return self.monitor is None

    def outputs_all(self) -> list[np.ndarray]:
        outs: list[np.ndarray] = self.inner.outputs_all()
        mon = self.monitor
        if mon is not None:
            for o in outs:
                if np.issubdtype(o.dtype, np.floating) and not np.isfinite(o).all():
                    mon.record_nonfinite()
                    self._observed(mon)
                    break
        return outs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def watch(runner: Any) -> WatchedModel:
    if not isinstance(runner.model, WatchedModel):
        runner.model = WatchedModel(runner.model)
    model: WatchedModel = runner.model
    return model


class Activation:
    """Swap, trial, commit / roll back for one device (its store, its agent's pipeline)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        updater: Updater,
        agent: AgentContext,
        *,
        load_runner: Callable[..., Any],
        on_change: Callable[[], None],
    ) -> None:
        """``load_runner(path, warmup=N)``: the agent's runner loader; ``on_change()``: the
        running model or the store changed (the command side republishes the status)."""
        self.config = config
        self.store = store
        self.updater = updater
        self.agent = agent
        self.load_runner = load_runner
        self.on_change = on_change
        self._wake = threading.Event()  # the trial can be decided, or a rollback/stop came
        self._stop = threading.Event()
        self._abort: str | None = None
        self._shadow: ShadowRun | None = None

    # -- signals from the command side -------------------------------------------------------
    def abort_trial(self, reason: str) -> None:
        """End the running trial now: ``cancelled`` when ``reason`` says cancel (the
        ``cancel`` command), else ``operator_rollback``."""
        self._abort = reason
        self._wake.set()

    def clear_abort(self) -> None:
        """A new update starts: an abort meant for the previous one does not apply."""
        self._abort = None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        run = self._shadow
        if run is not None:
            run.close()

    def on_result(self, fr: Any) -> None:
        """Every result of the active pipeline (its post thread): to the running shadow."""
        run = self._shadow
        if run is not None:
            run.on_result(fr)

    def shadow_figures(self) -> dict[str, Any] | None:
        run = self._shadow
        return run.figures().to_json() if run is not None else None

    # -- shadow evaluation before the swap ---------------------------------------------------
    def shadow(self, entry: Entry, policy: Shadow, cancel: Cancel) -> ShadowOutcome:
        """Run ``entry`` on its own one-thread interpreter beside the active model, on the live
        frames the policy samples, until a verdict (:mod:`.shadow`); the active model is not
        touched."""
        runner = self.load_runner(self.store.model_path(entry), warmup=1, threads=1)

        def active_ms() -> list[float]:
            return list(watch(self.agent.pipeline.runner).latencies_ms)

        run = ShadowRun(runner, policy, active_latencies_ms=active_ms)
        self._shadow = run.start()
        try:
            if self._stop.is_set():
                run.close()
            return run.wait(cancel)
        finally:
            self._shadow = None
            run.close()

    # -- the running model -------------------------------------------------------------------
    def load(self, path: Path) -> Any:
        """A warmed Runner of ``path`` with the device's ``[model]`` settings and overrides."""
        return self.load_runner(path, warmup=2)

    def set_model_info(self, entry: Entry | None, source: str) -> None:
        """Tell the agent (metrics ``model``) which model runs now; sha256 of the loaded file."""
        p = getattr(self.agent, "pipeline", None)
        model = getattr(getattr(p, "runner", None), "model", None)
        info = getattr(self.agent, "model_info", None)
        if isinstance(info, dict):
            if entry is not None:
                info.update(name=entry.name, version=entry.version, file=entry.file)
            info.update(sha256=getattr(model, "sha256", None), source=source,
                        delegate=getattr(model, "delegate", None), **engine_info(model))
        if p is not None and hasattr(p, "model_name") and entry is not None:
            p.model_name = entry.file

    def swap_in(self, runner: Any, entry: Entry, source: str) -> None:
        watch(runner)
        self.agent.pipeline.swap(runner)
        self.set_model_info(entry, source)

    def rollback_now(self) -> Entry:
        s = self.store.load()
        if s.previous is None:
            raise NoPreviousVersion("no previous model to roll back to")
        self.store.verify(s.previous)
        runner = self.load(self.store.model_path(s.previous))
        self.store.save(rollback(s))
        self.swap_in(runner, s.previous, "store:active")
        self.on_change()
        return s.previous

    # -- activation and trial ----------------------------------------------------------------
    def activate(self, r: R.Rollout, entry: Entry) -> None:
        """Load ``entry`` beside the running model, swap it in, run its trial to the end."""
        up = self.updater
        pipeline = self.agent.pipeline
        try:
            runner = self.load(self.store.model_path(entry))
        except Exception as exc:
            up.advance(r, "error", reason="load_failed", detail=str(exc), change=abandon_trial)
            return
        old_runner = pipeline.runner
        baseline = r.deployment.baseline_ms
        watched = watch(runner)
        watched.monitor = TrialMonitor(self.policy(entry, r.deployment), time.monotonic())
        pipeline.swap(runner)
        self.set_model_info(entry, "store:trial")
        up.advance(r, "swapped", detail=f"baseline p95 {baseline or 0:.2f} ms")
        self.on_change()
        self.watch_trial(r, watched, old_runner)

    def resume_trial(self, d: Deployment, entry: Entry) -> R.Rollout:
        """The agent booted on the trial model (store:trial): watch the rest of its trial."""
        r = R.Rollout(d)
        watched = watch(self.agent.pipeline.runner)
        watched.monitor = TrialMonitor(self.policy(entry, d), time.monotonic())
        if r.state == R.ACTIVATING:
            self.updater.advance(r, "swapped", detail="trial model loaded at boot")
        else:
            self.updater.send(r.deployment)
        return r

    @staticmethod
    def _observe_camera(mon: TrialMonitor, reader: Any) -> None:
        now, health = time.monotonic(), reader.health
        if health == "ok":
            if mon.down_since is not None:
                log.info("trial: camera frames flowing again, the trial window runs on")
            mon.source_up(now)
        else:
            if mon.down_since is None:
                log.warning("trial: the camera delivers no frames (%s); the trial window "
                            "waits for it", health)
            mon.source_down(now, f"camera {health}: {reader.last_error or 'no frame yet'}",
                            ended=health in ("ended", "stopped"))

    def policy(self, entry: Entry, d: Deployment) -> TrialPolicy:
        cfg = self.config.updates
        health = None
        try:
            raw = (self.store.dir_of(entry) / MANIFEST_NAME).read_bytes()
            health = parse_manifest(raw, entry.id).health
        except (OSError, UpdateError):
            pass
        return TrialPolicy(
            inferences=(health.trial_inferences if health and health.trial_inferences else None)
            or cfg.trial_inferences,
            seconds=(health.trial_seconds if health and health.trial_seconds else None)
            or cfg.trial_seconds,
            max_latency_ratio=health.max_latency_ratio if health else 2.0,
            baseline_p95_ms=d.baseline_ms,
            baseline_p50_ms=d.baseline_p50_ms,
            camera_wait_s=cfg.trial_camera_wait_s,
        )

    def watch_trial(self, r: R.Rollout, watched: WatchedModel, old_runner: Any) -> None:
        """Wait for the verdict (woken by the model, the camera, a rollback or stop), then
        commit or roll back. On stop the trial goes on at the next start (attempts permitting).
        While the camera delivers no frames the trial window stands still."""
        mon = watched.monitor
        assert mon is not None
        reader = getattr(self.agent.pipeline, "reader", None)
        if reader is not None:
            reader.add_listener(self._wake.set)
        watched.on_decided = self._wake.set
        verdict: Verdict | None = None
        try:
            while verdict is None:
                self._wake.clear()  # before the checks: a signal after them ends the wait
                if self._stop.is_set():
                    return
                if self._abort:
                    why = "cancelled" if "cancel" in self._abort else "operator_rollback"
                    verdict = Verdict(False, why, self._abort)
                    self._abort = None
                    break
                if reader is not None:
                    self._observe_camera(mon, reader)
                verdict = mon.verdict(time.monotonic())
                if verdict is None:
                    # past the monitor's deadline it always decides: the wait is bounded
                    self._wake.wait(max(mon.next_deadline() - time.monotonic(), 0.0) + 0.01)
        finally:
            watched.on_decided = None
            if reader is not None:
                reader.remove_listener(self._wake.set)
        watched.monitor = None
        if verdict.healthy:
            self.updater.advance(r, "healthy", detail=verdict.detail, change=commit_trial)
            s = self.store.load()
            self.store.gc(self.config.updates.keep_versions, s)
            if s.active is not None:
                self.set_model_info(s.active, "store:active")
        else:
            s = self.store.load()
            back = old_runner
            if back is None:
                target = s.active
                path = self.store.model_path(target) if target else None
                if path is None:
                    from ..resources import shipped_model

                    path = shipped_model()
                back = self.load(path)
            self.agent.pipeline.swap(back)
            if s.active is not None:
                self.set_model_info(s.active, "store:active")
            self.updater.advance(
                r, "unhealthy", reason=verdict.reason, detail=verdict.detail, change=abandon_trial
            )
        self.on_change()
