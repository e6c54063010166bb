"""Trial verdicts (pure) and the boot choice from the store (trial attempts, corrupt models)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.config import parse_config
from edge_agent.updates import rollout as R
from edge_agent.updates import state as S
from edge_agent.updates.boot import choose_model
from edge_agent.updates.store import Store
from edge_agent.updates.trial import TrialMonitor, TrialPolicy
from tests.support.updates import manifest_doc, sha


def test_trial_healthy_after_n_inferences() -> None:
    m = TrialMonitor(TrialPolicy(inferences=20, seconds=30, baseline_p95_ms=4.0), started=0.0)
    for _ in range(19):
        m.record(4.2)
    assert m.verdict(1.0) is None
    m.record(4.1)
    v = m.verdict(1.0)
    assert v is not None and v.healthy and "20 inferences" in v.detail


def test_trial_three_times_slower_fails_with_ratio() -> None:
    m = TrialMonitor(TrialPolicy(inferences=20, seconds=30, baseline_p95_ms=4.0), started=0.0)
    for _ in range(20):
        m.record(12.0)
    v = m.verdict(2.0)
    assert v is not None and not v.healthy and v.reason == "slower" and "3.0x" in v.detail


def test_trial_tail_spikes_alone_are_not_a_slower_model() -> None:
    pol = TrialPolicy(inferences=40, seconds=30, baseline_p95_ms=11.0, baseline_p50_ms=9.0)
    m = TrialMonitor(pol, started=0.0)
    for i in range(40):
        m.record(30.0 if i % 10 == 0 else 9.5)  # a loaded machine: a few long invokes
    v = m.verdict(2.0)
    assert v is not None and v.healthy, v
    slow = TrialMonitor(pol, started=0.0)
    for _ in range(40):
        slow.record(28.0)
    v2 = slow.verdict(2.0)
    assert v2 is not None and v2.reason == "slower" and "median 3.1x" in v2.detail


def test_trial_nan_fails_at_once_and_errors_fail() -> None:
    m = TrialMonitor(TrialPolicy(inferences=200, seconds=30), started=0.0)
    m.record(1.0)
    m.record_nonfinite()
    v = m.verdict(0.1)
    assert v is not None and v.reason == "nonfinite_outputs"
    m2 = TrialMonitor(TrialPolicy(inferences=200, seconds=30), started=0.0)
    for _ in range(3):
        m2.record_error("boom")
    v2 = m2.verdict(0.1)
    assert v2 is not None and v2.reason == "errors"


def test_trial_window_without_inferences_fails() -> None:
    m = TrialMonitor(TrialPolicy(inferences=200, seconds=5), started=0.0)
    m.record(1.0)
    v = m.verdict(6.0)
    assert v is not None and v.reason == "no_inferences"


def test_trial_window_stands_still_while_the_camera_is_missing() -> None:
    pol = TrialPolicy(inferences=200, seconds=5, camera_wait_s=60)
    m = TrialMonitor(pol, started=0.0)
    m.source_down(0.0, "camera reconnecting: connection refused")
    assert m.verdict(30.0) is None and not m.decided(30.0)  # past the window: still waiting
    assert m.next_deadline() == 60.0
    m.source_up(40.0)  # frames at last: the 5 s window starts now
    assert m.next_deadline() == 45.0 and m.verdict(44.0) is None
    for _ in range(20):
        m.record(1.0)
    v = m.verdict(45.5)
    assert v is not None and v.healthy and "in 5.5 s" in v.detail, v


def test_trial_without_a_camera_past_its_wait_is_camera_unavailable() -> None:
    m = TrialMonitor(TrialPolicy(inferences=200, seconds=5, camera_wait_s=60), started=0.0)
    for _ in range(4):
        m.record(1.0)
    m.source_down(2.0, "camera failed: connection refused")
    assert m.verdict(61.0) is None
    assert m.decided(62.0)
    v = m.verdict(62.0)
    assert v is not None and not v.healthy and v.reason == "camera_unavailable", v
    assert "no frames for 60 s" in v.detail and "connection refused" in v.detail
    assert "4 inferences" in v.detail
    ended = TrialMonitor(TrialPolicy(inferences=200, seconds=5), started=0.0)
    ended.source_down(1.0, "camera ended", ended=True)  # a finite clip: never comes back
    v2 = ended.verdict(1.0)
    assert v2 is not None and v2.reason == "camera_unavailable" and "ended" in v2.detail
    # enough inferences before the camera went: judged on them, as before
    done = TrialMonitor(TrialPolicy(inferences=3, seconds=5), started=0.0)
    for _ in range(3):
        done.record(1.0)
    done.source_down(1.0, "camera ended", ended=True)
    v3 = done.verdict(1.0)
    assert v3 is not None and v3.healthy


def _install(store: Store, version: str, seq: int, data: bytes) -> S.Entry:
    st = store.staging(f"d{version}")
    (st / "manifest.json").write_text(json.dumps(
        manifest_doc(version=version, seq=seq, files={"model.tflite": data})))
    (st / "model.tflite").write_bytes(data)
    e = S.Entry(f"demo/{version}-{sha(data)[:12]}", "demo", version, seq, sha(data), len(data),
                "model.tflite")
    store.install(st, e)
    return e


def _cfg(tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config({"device": {"id": "t", "state_dir": str(tmp_path)}})


def test_boot_trial_attempts_then_crash_loop_comes_back_on_active(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a, b = _install(store, "1", 1, b"AAAA"), _install(store, "2", 2, b"BBBB")
    d = S.Deployment("dep", "demo", "2", "file:///r", state=R.TRIAL)
    s = S.consume_attempt(S.begin_trial(S.StoreState(active=a, deployment=d), b, 2, "dep"))
    store.save(s)  # attempts_left 1: one more boot may try it
    first = choose_model(_cfg(tmp_path))
    assert first.source == "store:trial" and first.path == store.model_path(b)
    st = store.load()
    assert st.trial is not None and st.trial.attempts_left == 0  # persisted before loading
    second = choose_model(_cfg(tmp_path))  # the trial model crashed the agent: out of attempts
    assert second.source == "store:active" and second.path == store.model_path(a)
    st = store.load()
    assert st.trial is None and b.id in st.bad
    assert st.deployment is not None and st.deployment.state == R.ROLLED_BACK
    assert st.deployment.reason == "crash_loop" and not st.deployment.sent


def test_boot_corrupt_active_falls_back_to_previous(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a, b = _install(store, "1", 1, b"AAAA"), _install(store, "2", 2, b"BBBB")
    store.save(S.StoreState(active=b, previous=a))
    store.model_path(b).write_bytes(b"BBBX")
    boot = choose_model(_cfg(tmp_path))
    assert boot.source == "store:previous" and boot.path == store.model_path(a)
    assert store.load().active == a


def test_boot_both_corrupt_comes_back_on_the_factory_model(tmp_path: Path) -> None:
    from edge_agent.resources import shipped_model

    store = Store(tmp_path)
    a, b = _install(store, "1", 1, b"AAAA"), _install(store, "2", 2, b"BBBB")
    store.save(S.StoreState(active=b, previous=a))
    store.model_path(b).write_bytes(b"BBBX")
    store.model_path(a).unlink()
    boot = choose_model(_cfg(tmp_path))
    assert boot.source == "factory" and boot.path == shipped_model()
    s = store.load()
    assert s.active is None and {a.id, b.id} <= set(s.bad)


def test_update_command_params_are_checked_before_anything_runs(tmp_path: Path) -> None:
    import pytest

    from edge_agent.mqtt.errors import CommandError
    from edge_agent.updates.component import UpdateComponent

    comp = UpdateComponent(_cfg(tmp_path))
    for params in ({"model": "digits"}, {"model": "../etc", "version": "1"},
                   {"model": "d", "version": "1", "deployment": "x/y"},
                   {"model": "d", "version": "1"}):  # no registry anywhere
        with pytest.raises(CommandError) as info:
            comp.cmd_update(params)
        assert info.value.code == "bad_params"
    assert not (tmp_path / "models").exists()


def test_monitor_says_when_it_can_decide() -> None:
    """What wakes the trial watcher (no polling): enough inferences, a failure, the window."""
    m = TrialMonitor(TrialPolicy(inferences=3, seconds=5), started=0.0)
    assert not m.decided(1.0)
    m.record(1.0)
    m.record(1.0)
    assert not m.decided(1.0) and m.verdict(1.0) is None
    m.record(1.0)
    assert m.decided(1.0) and m.verdict(1.0) is not None
    late = TrialMonitor(TrialPolicy(inferences=100, seconds=5), started=0.0)
    assert not late.decided(4.9) and late.decided(5.0) and late.verdict(5.0) is not None
    bad = TrialMonitor(TrialPolicy(inferences=100, seconds=5), started=0.0)
    bad.record_nonfinite()
    assert bad.decided(0.1) and bad.verdict(0.1) is not None
