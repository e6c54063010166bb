"""Resource sampler (real psutil, fake sysfs tree), stage latencies, snapshot and summary."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.telemetry import (
    SCHEMA,
    ResourceSampler,
    StageLatencies,
    build_snapshot,
    final_summary,
    summary_line,
)


def _fake_sysfs(root: Path, *, rpi_throttled: str | None = None) -> Path:
    for i, (kind, milli) in enumerate((("cpu-thermal", "61250"), ("gpu", "48000"))):
        z = root / "class" / "thermal" / f"thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(milli + "\n")
    f = root / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    f.mkdir(parents=True)
    (f / "scaling_cur_freq").write_text("1500000\n")
    (f / "cpuinfo_max_freq").write_text("1800000\n")
    if rpi_throttled is not None:
        fw = root / "devices" / "platform" / "soc" / "soc:firmware"
        fw.mkdir(parents=True)
        (fw / "get_throttled").write_text(rpi_throttled)
    return root


class TestResourceSampler:
    def test_reads_process_machine_and_board(self, tmp_path: Path) -> None:
        sysfs = _fake_sysfs(tmp_path / "sys", rpi_throttled="0x50004")
        s = ResourceSampler(tmp_path / "state" / "not-yet", sysfs=sysfs).sample()
        assert s["rss_mb"] > 10 and s["memory"]["total_mb"] > s["memory"]["available_mb"] > 0
        assert len(s["cpu"]["load"]) == 3 and s["cpu"]["process_percent"] >= 0
        assert s["temperature"]["cpu_c"] == 61.2 or s["temperature"]["cpu_c"] == 61.3
        assert s["cpu"]["freq_mhz"] == 1500 and s["cpu"]["max_freq_mhz"] == 1800
        assert s["cpu"]["throttled"] is True
        assert s["disk"]["free_mb"] > 0  # nearest existing parent of the state dir
        json.dumps(s)

    def test_board_without_sensors_gives_none(self, tmp_path: Path) -> None:
        s = ResourceSampler(tmp_path, sysfs=tmp_path / "empty").sample()
        assert s["temperature"] == {"cpu_c": None, "zones": {}}
        assert s["cpu"]["freq_mhz"] is None and s["cpu"]["throttled"] is None


class TestSnapshot:
    def test_schema_fields_rates_and_lines(self, tmp_path: Path) -> None:
        lat = StageLatencies()
        for v in (0.003, 0.004, 0.005):
            lat.record_many({"age": 0.0001, "preprocess": 0.0005, "invoke": v,
                             "postprocess": 0.0001, "e2e": v + 0.001})
        window = lat.roll()
        counters = {"captured": 130, "processed": 100, "dropped": 30, "errors": 0,
                    "in_flight": 0, "dropped_by": {}, "swaps": 0}
        snap = build_snapshot(
            agent_version="0.1.0", window_start=10.0, window_end=15.0,
            wall_time=1.7e9, counters=counters,
            previous={"captured": 30, "processed": 50, "dropped": 5},
            latencies=window, resources=ResourceSampler(tmp_path).sample(),
            camera={"health": "ok"}, model={"name": "m"},
        )
        assert snap["schema"] == SCHEMA and snap["window"]["seconds"] == 5.0
        assert snap["window"]["end"] - snap["window"]["start"] == 5.0
        assert not {"seq", "ts", "device"} & set(snap)  # the MQTT publisher's keys
        assert snap["fps"] == {"captured": 20.0, "processed": 10.0, "dropped": 5.0}
        assert snap["latency_ms"]["invoke"]["count"] == 3
        assert abs(snap["latency_ms"]["invoke"]["p50"] - 4.0) < 0.04
        for key in ("cpu", "rss_mb", "memory", "temperature", "disk", "frames", "camera"):
            assert key in snap
        json.dumps(snap)
        line = summary_line(snap)
        assert "fps in 20.0 out 10.0 drop 5.0" in line and "inv=4.0/" in line
        assert lat.roll()["invoke"].count == 0 and lat.total()["invoke"].count == 3
        done = final_summary({"invoke": {"p50": 4.0, "p95": 5.0}}, counters, 10.0)
        assert "processed 100 dropped 30" in done and "fps in 13.0 out 10.0" in done
