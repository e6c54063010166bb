"""The rollout controller, pure: waves, thresholds, halts, time-outs, persistence (no broker)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.fleet import rollout as R
from edge_agent.fleet.errors import RolloutError
from edge_agent.fleet.spec import parse_duration, parse_percent, parse_waves, resolve_waves


def fleet(n: int, group: str = "g", active: str = "m 1", offline: tuple[str, ...] = ()
          ) -> dict[str, R.DeviceView]:
    return {f"d{i:02d}": R.DeviceView(online=f"d{i:02d}" not in offline, active=active,
                                      groups=(group,), last_seen=0.0) for i in range(n)}


def policy(waves: str = "1,25%,100%", **kw: object) -> R.Policy:
    return R.Policy(parse_waves(waves), **kw)  # type: ignore[arg-type]


def commit(r: R.Rollout, devices: list[str], now: float) -> None:
    for d in devices:
        R.on_reply(r, d, "update", True, now)
        R.on_record(r, d, "downloading", now)
        R.on_record(r, d, "committed", now)


class TestSpec:
    def test_waves_are_cumulative_and_end_at_100(self) -> None:
        assert resolve_waves(parse_waves("1,25%,100%"), 12) == [1, 3, 12]
        assert resolve_waves(parse_waves("1,10%,50%,100%"), 4) == [1, 2, 4]  # 10% of 4 = 1
        assert resolve_waves(parse_waves("100%"), 0) == []
        for bad in ("", "1,,100%", "0,100%", "1,50%", "abc,100%", "1,150%,100%"):
            with pytest.raises(RolloutError, match="--waves"):
                parse_waves(bad)
        assert resolve_waves(parse_waves("5,10%,100%"), 20) == [5, 20]  # a count is a floor
        with pytest.raises(RolloutError, match="cannot shrink"):
            parse_waves("50%,10%,100%")

    def test_percent_and_duration(self) -> None:
        assert parse_percent("95%", "x") == 95 and parse_percent("10", "x") == 10
        assert parse_duration("15m", "x") == 900 and parse_duration("90", "x") == 90
        for bad in ("101%", "-1", "nan"):
            with pytest.raises(RolloutError, match="--success-threshold"):
                parse_percent(bad, "--success-threshold")
        with pytest.raises(RolloutError, match="--wave-timeout '5 min'"):
            parse_duration("5 min", "--wave-timeout")


class TestWaves:
    def test_advances_wave_by_wave_to_finished(self) -> None:
        r = R.create("r1", "m", "2", policy(success_threshold=100), fleet(12), 0.0, group="g")
        cmds = R.tick(r, 1.0, fleet(12))
        assert [c.device for c in cmds] == ["d00"] and cmds[0].name == "update"
        assert cmds[0].id == "r1.update" and cmds[0].expires_at == 1.0 + 900
        assert cmds[0].params == {"model": "m", "version": "2", "deployment": "r1"}
        assert R.tick(r, 2.0, fleet(12)) == []  # never pushed twice
        commit(r, ["d00"], 3.0)
        cmds = R.tick(r, 3.0, fleet(12))
        assert [c.device for c in cmds] == ["d01", "d02"]
        commit(r, ["d01", "d02"], 4.0)
        cmds = R.tick(r, 4.0, fleet(12))
        assert len(cmds) == 9 and r.wave == 2
        commit(r, [c.device for c in cmds], 5.0)
        assert R.tick(r, 5.0, fleet(12)) == [] and r.state == R.FINISHED
        kinds = [d.kind for d in r.decisions]
        assert kinds == ["start", "push", "advance", "push", "advance", "push", "finish"]
        assert "12 committed, 0 failed, 0 skipped" in r.reason
        assert [w["committed"] for w in R.wave_progress(r)] == [1, 2, 9]

    def test_devices_on_the_version_are_skipped_and_online_ones_go_first(self) -> None:
        view = fleet(6, offline=("d00",))
        view["d05"] = R.DeviceView(True, "m 2", ("g",))
        r = R.create("r1", "m", "2", policy("1,100%"), view, 0.0, group="g")
        assert r.targets["d05"].state == R.SKIPPED and r.sizes == [1, 5]
        assert [c.device for c in R.tick(r, 0.0, view)] == ["d01"]  # d00 is offline

    def test_halts_at_the_error_threshold_once_min_executed_finished(self) -> None:
        view = fleet(12)
        r = R.create("r1", "m", "2", policy("1,100%", error_threshold=20, min_executed=5),
                     view, 0.0, group="g")
        R.tick(r, 0.5, view)
        commit(r, ["d00"], 1.0)
        assert len(R.tick(r, 1.0, view)) == 11
        for d in ("d01", "d02", "d03"):
            R.on_record(r, d, "rejected", 3.0, reason="too_slow")
        R.tick(r, 3.0, view)
        assert r.state == R.RUNNING  # 3 failed of 11 = 27 %, but only 3 finished < 5
        commit(r, ["d04", "d05"], 4.0)
        assert R.tick(r, 4.0, view) == [] and r.state == R.HALTED
        assert "3 of 11 device(s) failed (27%) >= error threshold 20%" in r.reason
        assert "d01 rejected too_slow" in r.reason
        assert R.tick(r, 5.0, view) == []  # on_halt pause: nothing sent
        R.resume(r, 6.0)  # the operator accepts the halted (last) wave
        assert r.state == R.FINISHED

    def test_halt_with_rollback_reverts_the_waves_committed_devices(self) -> None:
        view = fleet(4)
        r = R.create("r1", "m", "2", policy("1,100%", error_threshold=50, min_executed=1,
                                            on_halt="rollback"), view, 0.0, group="g")
        R.tick(r, 0.0, view)
        commit(r, ["d00"], 1.0)
        R.tick(r, 1.0, view)
        commit(r, ["d01"], 2.0)
        R.on_record(r, "d02", "rolled_back", 2.0, reason="slower")
        R.on_record(r, "d03", "failed", 2.0, reason="download_failed")
        cmds = R.tick(r, 2.0, view)
        assert r.state == R.HALTED
        assert [(c.device, c.name, c.id) for c in cmds] == [("d01", "rollback", "r1.rollback")]
        assert R.tick(r, 3.0, view) == []  # once
        R.on_reply(r, "d01", "rollback", True, 3.5)
        assert r.targets["d01"].state == R.REVERTED and r.targets["d00"].state == R.COMMITTED
        assert [d.kind for d in r.decisions][-2:] == ["halt", "rollback"]

    def test_every_device_finished_below_success_threshold_halts(self) -> None:
        view = fleet(10)
        r = R.create("r1", "m", "2", policy("100%", success_threshold=95, error_threshold=50),
                     view, 0.0, group="g")
        R.tick(r, 0.0, view)
        commit(r, [f"d{i:02d}" for i in range(9)], 1.0)
        R.on_record(r, "d09", "failed", 1.0)
        R.tick(r, 1.0, view)
        assert r.state == R.HALTED and "9 of 10 committed (90%) < success threshold 95%" \
            in r.reason

    def test_success_threshold_advances_before_the_slowest_device(self) -> None:
        view = fleet(20)
        r = R.create("r1", "m", "2", policy("10,100%", success_threshold=80), view, 0.0,
                     group="g")
        R.tick(r, 0.0, view)
        commit(r, [f"d{i:02d}" for i in range(8)], 1.0)
        assert len(R.tick(r, 1.0, view)) == 10 and r.wave == 1
        commit(r, [f"d{i:02d}" for i in range(10, 20)], 2.0)
        R.tick(r, 2.0, view)
        assert r.state == R.RUNNING  # d08, d09 of wave 1 are still pending
        commit(r, ["d08"], 3.0)
        R.on_record(r, "d09", "failed", 3.0)
        R.tick(r, 3.0, view)
        assert r.state == R.FINISHED and "19 committed, 1 failed" in r.reason


class TestTimeouts:
    def test_offline_device_pending_until_the_wave_timeout_then_failed(self) -> None:
        view = fleet(3, offline=("d02",))
        r = R.create("r1", "m", "2", policy("100%", wave_timeout_s=60, error_threshold=50,
                                            min_executed=1), view, 0.0, group="g")
        cmds = R.tick(r, 0.0, view)
        assert {c.device for c in cmds} == {"d00", "d01", "d02"}  # queued in its session
        assert all(c.expires_at == 60 for c in cmds)
        commit(r, ["d00", "d01"], 5.0)
        R.tick(r, 5.0, view)
        assert r.state == R.RUNNING and r.targets["d02"].state == R.PUSHED  # 67% < 95%
        R.tick(r, 60.0, view)
        t = r.targets["d02"]
        assert t.state == R.TIMED_OUT and "offline" in t.detail and "counted as failed" in t.detail
        assert r.state == R.HALTED  # 1 of 3 failed = 33% < 50%, but all finished below 95%
        timeouts = [d for d in r.decisions if d.kind == "timeout"]
        assert len(timeouts) == 1 and timeouts[0].reason.startswith("d02: offline")
        R.on_record(r, "d02", "committed", 70.0)  # back after all: shown, decision stands
        assert t.state == R.TIMED_OUT and t.late == "committed"

    def test_refused_and_expired_commands_count_as_failed(self) -> None:
        view = fleet(2)
        r = R.create("r1", "m", "2", policy("100%", error_threshold=50, min_executed=1),
                     view, 0.0, group="g")
        R.tick(r, 0.0, view)
        R.on_reply(r, "d00", "update", False, 1.0, code="expired", message="late")
        R.tick(r, 1.0, view)
        assert r.state == R.HALTED and r.targets["d00"].outcome == "refused"
        assert "d00 refused expired" in r.reason


class TestJoinAndOperator:
    def test_a_device_that_joins_the_group_gets_the_last_wave(self) -> None:
        view = fleet(4)
        r = R.create("r1", "m", "2", policy("1,100%"), view, 0.0, group="g")
        R.tick(r, 0.0, view)
        view["new"] = R.DeviceView(True, "m 1", ("g",))
        commit(r, ["d00"], 1.0)
        cmds = R.tick(r, 1.0, view)
        assert "new" in {c.device for c in cmds} and r.sizes == [1, 5]
        assert any(d.kind == "join" and "new" in d.reason for d in r.decisions)

    def test_pause_resume_abort_and_illegal_requests(self) -> None:
        view = fleet(3)
        r = R.create("r1", "m", "2", policy("1,100%"), view, 0.0, group="g")
        R.tick(r, 0.0, view)
        R.pause(r, 1.0)
        commit(r, ["d00"], 2.0)
        assert R.tick(r, 2.0, view) == [] and r.state == R.PAUSED
        with pytest.raises(R.IllegalTransition, match="rollout r1 is paused: cannot pause"):
            R.pause(r, 3.0)
        R.resume(r, 3.0)
        assert len(R.tick(r, 3.0, view)) == 2
        R.abort(r, 4.0)
        assert R.tick(r, 5.0, view) == [] and r.final
        with pytest.raises(RolloutError, match="is aborted: cannot resume"):
            R.resume(r, 6.0)

    def test_unknown_devices_and_empty_groups_are_refused(self) -> None:
        with pytest.raises(RolloutError, match="ghost: not known to the fleet"):
            R.create("r1", "m", "2", policy(), fleet(2), 0.0, devices=["d00", "ghost"])
        with pytest.raises(RolloutError, match="group 'x': no device"):
            R.create("r1", "m", "2", policy(), fleet(2), 0.0, group="x")
        with pytest.raises(RolloutError, match="--on-halt"):
            policy(on_halt="explode")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["committed", "failed", "rejected", "silent"]), min_size=1,
                max_size=30), st.sampled_from(["1,25%,100%", "100%", "2,50%,100%"]))
def test_persisted_and_restored_at_every_step_gives_the_same_rollout_and_no_second_push(
    outcomes: list[str], waves: str
) -> None:
    """A service killed after any step resumes from the saved JSON: same decisions, and no
    device ever gets a second update command."""
    view = fleet(len(outcomes))
    p = policy(waves, success_threshold=50, error_threshold=60, min_executed=2,
               wave_timeout_s=10)
    live = R.create("r1", "m", "2", p, view, 0.0, group="g")
    pushed: list[str] = []
    now = 0.0
    for _ in range(40):
        now += 3.0
        restored = R.Rollout.from_json(json.loads(json.dumps(live.to_json())))
        assert restored == live
        live = restored
        for c in R.tick(live, now, view):
            if c.name == "update":
                pushed.append(c.device)
        for d, o in zip(sorted(view), outcomes, strict=True):
            if live.targets[d].state == R.PUSHED and o != "silent":
                R.on_record(live, d, o, now)
        if live.state != R.RUNNING:
            break
    assert len(pushed) == len(set(pushed))
