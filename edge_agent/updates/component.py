"""UpdateComponent, the command side of updates: the ``update``, ``cancel`` and ``rollback``
commands, the registry poll, resuming after a restart, progress and the retained status.

A :class:`~edge_agent.component.Component`; commands arrive through the ``messaging`` it is
given (MQTT, wired by :mod:`edge_agent.app`); the work runs in one worker thread (one update at
a time): :mod:`.updater` takes a deployment through download, verification and preflight, then
:mod:`.activation` swaps the new model in and runs its trial to commit or rollback.

``cancel`` (and ``rollback``) end an update in progress: before the swap through the rollout's
:class:`.cancel.Cancel` token (a blocked download returns at once; the record ends
``cancelled``), during the trial by rolling the trial back. ``stop`` cancels with reason
``shutdown``: the worker returns within the shutdown budget, the update stays persisted and
resumes at the next start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..component import Component, Messaging
from ..config import Config
from ..errors import ComponentError, EdgeAgentError
from . import rollout as R
from .activation import Activation, watch
from .cancel import Cancel
from .errors import UpdateBusy, UpdateError
from .keys import TrustStore
from .params import UpdateParams
from .state import (
    Deployment,
    Entry,
    abandon_trial,
    recovery_record,
)
from .store import Store
from .trial import p50, p95
from .updater import Updater, new_deployment

log = logging.getLogger("edge_agent.updates")

MAX_RESTARTS = 3
CANCEL_WAIT_S = 5.0  # how long cancel/rollback wait for the worker to end before replying
STOP_WAIT_S = 1.0


class UpdateComponent(Component):
    name = "updates"

    def __init__(
        self,
        config: Config | None = None,
        *,
        load_runner: Callable[..., Any] | None = None,
        messaging: Messaging | None = None,
    ) -> None:
        """``load_runner(path, warmup=N) -> Runner`` loads a new or previous model the way the
        boot model was loaded (``RunnerLoader``: the ``[model]`` overrides apply to every model).
        ``messaging``: where the
        ``update``/``rollback`` commands are registered and progress is published (MQTT;
        None: no commands, progress only logged). Both are wired by :mod:`edge_agent.app`."""
        self.config = config
        self.load_runner = load_runner
        self.messaging = messaging
        self.agent: Any = None
        self.store: Store | None = None
        self.updater: Updater | None = None
        self.trust_error: str | None = None
        self._worker: threading.Thread | None = None
        self._busy = threading.Lock()
        self.activation: Activation | None = None
        self._rollout: R.Rollout | None = None
        self._cancel: Cancel | None = None
        self._last_poll = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, agent: Any) -> None:
        self.agent = agent
        cfg: Config = self.config or agent.config
        self.config = cfg
        if self.load_runner is None:
            raise ComponentError("updates: no runner loader wired in (edge_agent.app does it)")
        try:
            trust = TrustStore.from_files(cfg.updates.trusted_keys)
        except EdgeAgentError as exc:  # a bad key file: keep running, refuse every update
            self.trust_error = str(exc)
            log.error("updates disabled: %s", exc)
            trust = TrustStore({})
        self.store = Store(cfg.device.state_dir, None if self.trust_error else trust)
        self.updater = Updater(
            cfg.updates, self.store, trust, publish=self._publish, threads=cfg.model.threads
        )
        assert self.load_runner is not None
        self.activation = Activation(
            cfg, self.store, self.updater, agent, load_runner=self.load_runner,
            on_change=self._status,
        )
        mqtt = self._mqtt()
        if mqtt is not None:
            mqtt.add_command("update", self.cmd_update, UpdateParams)
            mqtt.add_command("rollback", self.cmd_rollback)
            mqtt.add_command("cancel", self.cmd_cancel)
        if agent.pipeline is not None:
            watch(agent.pipeline.runner)
            boot: Any = getattr(agent, "boot", None)
            if boot is not None and getattr(boot, "entry", None) is not None:
                self.activation.set_model_info(boot.entry, boot.source)
        self._resume()
        self._status()

    def stop(self) -> None:
        if self.activation is not None:
            self.activation.stop()
        c = self._cancel
        if c is not None:
            c.cancel("shutdown")
        w = self._worker
        if w is not None:
            w.join(STOP_WAIT_S)

    # -- adapters ----------------------------------------------------------------------------
    def _mqtt(self) -> Messaging | None:
        return self.messaging

    def _publish(self, record: dict[str, Any]) -> None:
        if record.get("progress") is None or record.get("progress") == 1.0:
            why = f" ({record['reason']}: {record.get('detail', '')})" if "reason" in record else ""
            log.info("update %s %s %s: %s%s", record["deployment"], record["model"],
                     record["version"], record["state"], why)
        mqtt = self._mqtt()
        if mqtt is not None:
            mqtt.publish("update", record)

    def _status(self) -> None:
        assert self.store is not None
        s = self.store.load()

        def label(e: Entry | None) -> str | None:
            return f"{e.name} {e.version}" if e else None

        info = getattr(self.agent, "model_info", None) or {}
        fields = {
            "models": {
                "active": label(s.active),
                "previous": label(s.previous),
                "trial": label(s.trial.entry) if s.trial else None,
                "running": {k: info.get(k) for k in ("name", "version", "sha256", "source")},
                "store": recovery_record(s),
            }
        }
        mqtt = self._mqtt()
        if mqtt is not None:
            mqtt.publish("status", fields)

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        """Re-send an unsent outcome; poll the registry when ``poll_interval_s`` is set."""
        assert self.store is not None and self.config is not None
        d = self.store.load().deployment
        if d is not None and d.final and not d.sent and self.updater is not None:
            self.updater.send(d)
        cfg = self.config.updates
        now = time.monotonic()
        due = now - self._last_poll >= cfg.poll_interval_s
        if cfg.poll_interval_s <= 0 or not cfg.registry or not due:
            return
        self._last_poll = now
        if self._busy.acquire(blocking=False):
            threading.Thread(target=self._poll, args=(cfg.registry,), name="updates-poll",
                             daemon=True).start()

    def _poll(self, registry: str) -> None:
        """Start an update when ``<registry>/<name>/latest.json`` names a newer release."""
        assert self.store is not None and self.updater is not None
        from .fetch import join_url
        from .publish import LATEST_NAME

        spawned = False
        try:
            s = self.store.load()
            if s.active is None:
                return  # the factory model: nothing to follow
            name = s.active.name
            raw = self.updater.fetcher.get_bytes(join_url(registry, name, LATEST_NAME), 4096)
            latest = json.loads(raw)
            version, seq = str(latest["version"]), int(latest["seq"])
            last = s.deployment
            if seq <= s.highest_seq.get(name, -1) or version == s.active.version:
                return
            if last is not None and (last.model, last.version) == (name, version) and last.final:
                return  # tried already: a new release is needed
            self._spawn(new_deployment(name, version, registry))
            spawned = True
        except (UpdateError, ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("update poll of %s failed: %s", registry, exc)
        finally:
            if not spawned:
                self._busy.release()

    def contribute(self, snapshot: dict[str, Any]) -> None:
        r = self._rollout
        if r is not None:
            snapshot["update"] = {"deployment": r.deployment.id, "state": r.state}
            shadow = self.activation.shadow_figures() if self.activation else None
            if shadow is None:
                shadow = r.deployment.shadow
            if shadow is not None:
                snapshot["update"]["shadow"] = shadow

    def on_result(self, result: Any) -> None:
        if self.activation is not None:
            self.activation.on_result(result)

    # -- commands ----------------------------------------------------------------------------
    def cmd_update(self, params: dict[str, Any]) -> dict[str, Any]:
        """:class:`.params.UpdateParams` (checked by the dispatcher, and here for direct calls)."""
        assert self.config is not None
        from ..mqtt.commands import validate_params

        p = UpdateParams.model_validate(validate_params(UpdateParams, params))
        registry = p.registry or self.config.updates.registry
        if not registry:
            raise _command_error(
                "bad_params", "no 'registry' in the command and no [updates] registry configured"
            )
        d = new_deployment(p.model, p.version, registry, p.deployment)
        if not self._acquire():
            raise _command_error("busy", UpdateBusy("an update is already running").args[0])
        self._spawn(d)
        return {"deployment": d.id, "state": R.RECEIVED}

    def cmd_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        """End the update in progress: ``{"cancelled": ID, "state": S, "outcome": O}``
        (``cancelled`` before the swap, ``rolled_back`` during the trial); ``cancelled`` is
        null when no update runs."""
        r, c = self._rollout, self._cancel
        if c is None or (r is not None and r.final):  # (a registry poll is not an update)
            return {"cancelled": None, "detail": "no update in progress"}
        did = r.deployment.id if r is not None else None
        state = r.state if r is not None else R.RECEIVED
        self._end_current("cancel", "operator cancel")
        final = self._wait_worker()
        out: dict[str, Any] = {"cancelled": did or (final.id if final else None), "state": state}
        if final is not None:
            out["outcome"] = final.state
        else:
            out["detail"] = "still finishing its current step; the final record follows"
        return out

    def _acquire(self) -> bool:
        """Take the update channel; an update whose final record is out frees it in a moment
        (its worker is returning), so a command sent right after that record is not busy."""
        if self._busy.acquire(blocking=False):
            return True
        r = self._rollout
        if r is None:  # between two steps of a worker that is ending, or a poll starting
            return self._busy.acquire(timeout=1.0)
        return r.final and self._busy.acquire(timeout=CANCEL_WAIT_S)

    def _end_current(self, why: str, detail: str) -> None:
        r = self._rollout
        if r is not None and r.state in (R.ACTIVATING, R.TRIAL):
            assert self.activation is not None
            self.activation.abort_trial(f"operator {why}")
        c = self._cancel
        if c is not None:
            c.cancel(why, detail)

    def _wait_worker(self) -> Deployment | None:
        """Wait (bounded) for the worker to end; the deployment if it is final, or None."""
        w = self._worker
        if w is not None and w is not threading.current_thread():
            w.join(CANCEL_WAIT_S)
            if w.is_alive():
                return None
        assert self.store is not None
        d = self.store.load().deployment
        return d if d is not None and d.final else None

    def cmd_rollback(self, params: dict[str, Any]) -> dict[str, Any]:
        """Go back to the previous model now (a running trial is rolled back instead; an
        update still before its swap is cancelled first)."""
        if self._rollout is not None and self._rollout.state == R.TRIAL:
            assert self.activation is not None
            self.activation.abort_trial("operator rollback")
            return {"rolled_back": "trial", "deployment": self._rollout.deployment.id}
        cancelled = None
        r = self._rollout
        if r is not None and not r.final and r.state in R.BEFORE_SWAP:
            cancelled = r.deployment.id
            self._end_current("rollback", "operator rollback")
            self._wait_worker()
        if not self._acquire():
            raise _command_error("busy", "an update is running; retry when it has finished")
        try:
            assert self.activation is not None
            entry = self.activation.rollback_now()
        except UpdateError as exc:
            raise _command_error(exc.reason, str(exc)) from None
        finally:
            self._busy.release()
        out: dict[str, Any] = {"active": f"{entry.name} {entry.version}"}
        if cancelled:
            out["cancelled"] = cancelled
        return out

    # -- the worker --------------------------------------------------------------------------
    def _spawn(self, d: Deployment) -> None:
        cancel = Cancel()
        self._cancel = cancel
        if self.activation is not None:
            self.activation.clear_abort()

        def run() -> None:
            try:
                self._run(d, cancel)
            except Exception as exc:  # e.g. the disk is full: end the rollout, say why
                log.exception("update %s failed unexpectedly", d.id)
                self._abort(exc)
            finally:
                self._rollout = None
                self._cancel = None
                self._busy.release()

        self._worker = threading.Thread(target=run, name="updates", daemon=True)
        self._worker.start()

    def _abort(self, exc: Exception) -> None:
        r, up = self._rollout, self.updater
        if r is None or up is None or r.final or r.state in (R.ACTIVATING, R.TRIAL):
            return  # a trial in the store is settled by the next boot (attempts counter)
        try:
            up.advance(r, "abort", reason="internal_error", detail=f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("could not record the failure of update %s", r.deployment.id)

    def _input_shape(self) -> list[int] | None:
        p = getattr(self.agent, "pipeline", None)
        if p is None:
            return None
        return [int(x) for x in p.runner.model.inputs[0].shape]

    def _runtime(self) -> str | None:
        p = getattr(self.agent, "pipeline", None)
        backend = getattr(getattr(p, "runner", None), "model", None)
        name = getattr(getattr(backend, "backend", None), "name", None)
        return str(name) if name else None

    def _run(self, d: Deployment, cancel: Cancel) -> None:
        assert self.updater is not None and self.config is not None and self.store is not None
        up = self.updater
        if self.trust_error:
            r = up.start(d)
            up.advance(r, "reject", reason="no_trusted_keys", detail=self.trust_error)
            return
        # the running model's p95 before download and preflight load the CPU: the trial baseline
        p = getattr(self.agent, "pipeline", None)
        if p is not None and d.baseline_ms is None:
            ring = list(watch(p.runner).latencies_ms)
            d = replace(d, baseline_ms=p95(ring) or None, baseline_p50_ms=p50(ring) or None)
        r = up.start(d)
        self._rollout = r
        assert self.activation is not None
        prepared = up.prepare(
            r, input_shape=self._input_shape(), runtime=self._runtime(), cancel=cancel,
            shadow=self.activation.shadow if p is not None else None,
        )
        if prepared is None:
            return
        self.activation.activate(r, prepared.entry)

    # -- after a restart ---------------------------------------------------------------------
    def _resume(self) -> None:
        """Re-send a finished outcome, continue a trial, or restart an interrupted update."""
        assert self.store is not None and self.updater is not None
        s = self.store.load()
        d = s.deployment
        boot = getattr(self.agent, "boot", None)
        if d is None:
            return
        if d.final:
            if not d.sent:
                self.updater.send(d)
            return
        if not self._busy.acquire(blocking=False):
            return
        if (
            getattr(boot, "source", None) == "store:trial"
            and s.trial is not None
            and s.trial.deployment == d.id
            and self.agent.pipeline is not None
        ):
            self._spawn_trial(d, s.trial.entry)
            return
        if d.restarts >= MAX_RESTARTS:
            r = R.Rollout(d)
            try:
                self.updater.advance(
                    r, "abort", reason="interrupted",
                    detail=f"interrupted by {d.restarts} restarts", change=abandon_trial,
                )
            finally:
                self._busy.release()
            return
        self._spawn(
            replace(d, state=R.RECEIVED, reason="", detail="", restarts=d.restarts + 1)
        )
    def _spawn_trial(self, d: Deployment, entry: Entry) -> None:
        self._cancel = Cancel()  # nothing to download: marks "an update runs" for cancel
        act = self.activation
        assert act is not None
        act.clear_abort()

        def run() -> None:
            try:
                r = self._rollout = act.resume_trial(d, entry)
                act.watch_trial(r, watch(self.agent.pipeline.runner), None)
            except Exception:
                log.exception("trial of %s failed unexpectedly", d.id)
            finally:
                self._rollout = None
                self._cancel = None
                self._busy.release()

        self._worker = threading.Thread(target=run, name="updates-trial", daemon=True)
        self._worker.start()


def _command_error(code: str, message: str) -> Exception:
    try:
        from ..mqtt.errors import CommandError
    except ImportError:  # the MQTT part is absent: a plain error with the same message
        return UpdateError(message)
    err: Exception = CommandError(code, message)
    return err
