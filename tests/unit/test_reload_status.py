"""Pure parts: the SIGHUP reload plan and the status record."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from edge_agent.config import parse_config
from edge_agent.ops.reload import plan_reload
from edge_agent.ops.status import render, summarize


class TestReloadPlan:
    def test_no_change(self) -> None:
        a = parse_config({"device": {"id": "d"}})
        plan = plan_reload(a, parse_config({"device": {"id": "d"}}))
        assert plan.live == [] and plan.restart == []

    def test_logging_live_rest_restart(self) -> None:
        a = parse_config({"device": {"id": "d"}})
        b = parse_config(
            {
                "device": {"id": "d"},
                "logging": {"level": "DEBUG"},
                "camera": {"source": "/dev/video1"},
                "model": {"threads": 3},
            }
        )
        plan = plan_reload(a, b)
        assert plan.live == ["logging.level"]
        assert plan.restart == ["camera.source", "model.threads"]

    def test_password_change_is_detected_not_shown(self) -> None:
        a = parse_config({"device": {"id": "d"}, "mqtt": {"password": "one1"}})
        b = parse_config({"device": {"id": "d"}, "mqtt": {"password": "two2"}})
        assert plan_reload(a, b).restart == ["mqtt.password"]


class TestStatus:
    SNAP: ClassVar[dict[str, Any]] = {
        "fps": {"captured": 30.0, "processed": 29.5, "dropped": 0.5},
        "latency_ms": {"invoke": {"p50": 3.0, "p95": 4.25}, "preprocess": {"p95": 1.0}},
        "bridge": {"connected": True},
        "pipeline": {"schedule": "serial", "threads": 2,
                     "economy": {"setting": "auto", "active": True, "threads_in_use": 1,
                                 "reason": "1 thread: busy 9% of the time"}},
    }
    FACTS: ClassVar[dict[str, Any]] = {
        "version": "1.0",
        "device_id": "d",
        "uptime_s": 12.0,
        "model": {"name": "digits", "version": "3", "sha256": "ab" * 32, "backend": "litert"},
        "camera": {"source": "/dev/video0"},
        "broker": {"enabled": False},
    }

    def test_summarize(self) -> None:
        s = summarize(self.SNAP, self.FACTS, state="running", pid=7)
        assert s["latency_p95_ms"] == {"invoke": 4.25, "preprocess": 1.0}
        assert s["fps"]["processed"] == 29.5
        assert s["bridge"] == {"connected": True}
        assert s["model"]["name"] == "digits" and s["state"] == "running"

    def test_render_running_and_stopped(self) -> None:
        s = summarize(self.SNAP, self.FACTS, state="running", pid=7)
        text = render(s, running=True)
        assert "agent: running (pid 7" in text
        assert "model: digits 3 sha256 abababababab" in text
        assert "invoke=4.25" in text
        assert "pipeline: schedule=serial, threads=2" in text
        assert "economy: 1 interpreter thread(s), auto: 1 thread: busy 9% of the time" in text
        stopped = render(summarize({}, self.FACTS, state="stopped", pid=7), running=False)
        assert stopped.startswith("agent: not running; last state 'stopped'")
        assert "did not stop cleanly" not in stopped
        crashed = render(summarize({}, self.FACTS, state="running", pid=7), running=False)
        assert "did not stop cleanly: crashed or killed" in crashed


def test_broker_and_last_update_in_status(tmp_path: Path) -> None:
    from edge_agent.config import parse_config
    from edge_agent.ops.agent_view import store_facts
    from edge_agent.updates.state import Deployment, StoreState
    from edge_agent.updates.store import Store

    cfg = parse_config({"device": {"state_dir": str(tmp_path)}})
    assert store_facts(Store.for_config(cfg)) == {"update": {}, "model_store": {"state": "ok"}}
    Store(tmp_path).save(
        StoreState(deployment=Deployment(id="d7", model="digits", version="2.0", registry="r",
                                         state="rolled_back", reason="crash_loop", final=True))
    )
    update = store_facts(Store.for_config(cfg))["update"]
    assert update == {"deployment": "d7", "model": "digits", "version": "2.0",
                      "state": "rolled_back", "reason": "crash_loop"}
    snap = {"mqtt": {"connected": False, "last_error": "connection refused",
                     "outbox": {"pending": 12}}}
    s = summarize(snap, {"broker": {"enabled": True}, "update": update}, state="running", pid=1)
    assert s["broker"] == {"enabled": True, "connected": False,
                           "last_error": "connection refused", "outbox_pending": 12}
    assert s["update"]["state"] == "rolled_back"
    assert "last update: deployment=d7" in render(s, running=True)
