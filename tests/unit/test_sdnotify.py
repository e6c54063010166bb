"""sd_notify: the pure plan, and the notifier on a real unix datagram socket."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edge_agent.ops.sdnotify import (
    Notifier,
    NotifyPlan,
    status_line,
    take_environment,
    watchdog_interval_s,
)


class TestNotifyPlan:
    def test_nothing_before_the_first_frame(self) -> None:
        plan = NotifyPlan()
        assert plan.step(0) == []
        assert plan.step(0) == []
        assert not plan.ready

    def test_ready_then_watchdog_on_first_frame(self) -> None:
        plan = NotifyPlan()
        assert plan.step(1, "1 fps") == ["READY=1", "STATUS=1 fps", "WATCHDOG=1"]
        assert plan.ready

    def test_watchdog_only_while_counter_moves(self) -> None:
        plan = NotifyPlan()
        plan.step(3)
        assert plan.step(5) == ["WATCHDOG=1"]
        assert plan.step(5) == []  # stalled: no ping
        assert plan.step(5) == []
        assert plan.step(9) == ["WATCHDOG=1"]  # resumed
        assert plan.pings == 3

    def test_counter_going_back_is_not_progress(self) -> None:
        plan = NotifyPlan()
        plan.step(10)
        assert plan.step(4) == []
        assert plan.step(10) == []
        assert plan.step(11) == ["WATCHDOG=1"]

    def test_status_sent_only_when_it_changes(self) -> None:
        plan = NotifyPlan()
        plan.step(1, "a")
        assert plan.step(2, "a") == ["WATCHDOG=1"]
        assert plan.step(2, "b") == ["STATUS=b"]

    def test_fps_over_window(self) -> None:
        plan = NotifyPlan()
        assert plan.fps(0.0, 0) == 0.0
        assert plan.fps(1.0, 10) == pytest.approx(10.0)
        assert plan.fps(2.0, 30) == pytest.approx(15.0)
        assert status_line(15.0, "m 1") == "15.0 fps, model m 1"


class TestEnvironment:
    def test_interval_for_this_pid(self) -> None:
        assert watchdog_interval_s({"WATCHDOG_USEC": "3000000"}, 42) == 3.0
        assert watchdog_interval_s({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"}, 42) == 3.0

    @pytest.mark.parametrize(
        "env", [{}, {"WATCHDOG_USEC": "x"}, {"WATCHDOG_USEC": "0"},
                {"WATCHDOG_USEC": "100", "WATCHDOG_PID": "7"}],
    )
    def test_no_interval(self, env: dict[str, str]) -> None:
        assert watchdog_interval_s(env, 42) is None

    def test_take_removes_variables(self) -> None:
        env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "PATH": "/bin"}
        assert take_environment(env) == {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1"}
        assert env == {"PATH": "/bin"}


class TestNotifier:
    def test_sends_datagram_to_path(self, tmp_path: Path) -> None:
        path = tmp_path / "notify"
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(str(path))
        rx.settimeout(2)
        n = Notifier(str(path))
        assert n.enabled and n.send("READY=1", "STATUS=ok")
        assert rx.recv(4096) == b"READY=1\nSTATUS=ok"
        n.close()
        rx.close()

    def test_abstract_socket(self) -> None:
        name = f"edge-agent-test-{id(self)}"
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind("\0" + name)
        rx.settimeout(2)
        n = Notifier("@" + name)
        assert n.send("WATCHDOG=1")
        assert rx.recv(4096) == b"WATCHDOG=1"
        n.close()
        rx.close()

    def test_disabled_without_socket(self) -> None:
        n = Notifier(None)
        assert not n.enabled and not n.send("READY=1")

    def test_missing_socket_is_a_warning_not_a_crash(self, tmp_path: Path) -> None:
        n = Notifier(str(tmp_path / "gone"))
        assert n.send("READY=1") is False
