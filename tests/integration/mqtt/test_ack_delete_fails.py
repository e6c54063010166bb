"""Acknowledged records that cannot be removed (a full disk refuses the DELETE) must not stop
the sending: the status and the records after them still go out, and the acknowledged rows are
removed once the disk can write again. (Found by CI: on a restart on a full disk the degraded
status waited behind the failing delete forever.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edge_agent.config import load_config
from edge_agent.mqtt.component import MqttComponent
from edge_agent.mqtt.outbox import OutboxError
from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.mqtt_agent import write_config


class _Agent:
    def __init__(self, path: Path) -> None:
        self.config_path = path
        self.config = load_config(path)
        self.pipeline: Any = None


def test_a_failing_delete_does_not_hold_back_status_or_records(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = write_config(tmp_path / "agent.toml", tmp_path / "state", mosquitto.port)
    rec = Recorder(mosquitto.port, ["edge/dev1/#"], client_id="ack-delete-rec")
    comp = MqttComponent()
    comp.start(_Agent(cfg))
    comp.on_started()
    try:
        assert comp.link is not None and comp.outbox is not None
        comp.link.wait_ready(10)
        comp.publish("metrics", {"n": 1})
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) == 1)
        real_delete = comp.outbox.delete
        refused: list[int] = []

        def full_disk(ids: list[int]) -> None:
            refused.append(len(ids))
            raise OutboxError(f"{comp.outbox.path}: cannot remove sent records: "  # type: ignore[union-attr]
                              "database or disk is full")

        comp.outbox.delete = full_disk  # type: ignore[method-assign,assignment]
        for n in range(2, 12):
            comp.publish("metrics", {"n": n})
        comp.status_fields["degraded"] = {"outbox": "records not stored (disk full)"}
        comp._mark_status()
        assert rec.wait(lambda r: any(s.get("degraded") for s in r.on("edge/dev1/status")),
                        timeout=15), "the degraded status was held back by the failing delete"
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) == 11, timeout=15)
        assert refused, "the delete was never tried"
        comp.outbox.delete = real_delete  # type: ignore[method-assign]
        deadline = time.monotonic() + 15
        while len(comp.outbox) and time.monotonic() < deadline:
            comp._notify()
            time.sleep(0.2)
        assert len(comp.outbox) == 0, "acknowledged rows not removed once the disk writes again"
        assert [m["n"] for m in rec.on("edge/dev1/metrics")] == list(range(1, 12))
    finally:
        comp.stop()
        rec.close()
