"""Resource sampler (real psutil, fake sysfs tree), stage latencies, snapshot and summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge_agent.telemetry import (
    SCHEMA,
    ResourceSampler,
    StageLatencies,
    build_snapshot,
    cgroup,
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


def _fake_cgroup(tmp: Path, *, own: dict[str, str], parent: dict[str, str] | None = None,
                 hybrid: bool = False, namespaced: bool = False) -> Path:
    """A /proc (self/cgroup, self/mountinfo) and a cgroup2 tree for a process in
    ``/system.slice/edge-agent.service`` (or ``/`` when the container has its own namespace)."""
    proc = tmp / "proc" / "self"
    proc.mkdir(parents=True)
    mount = tmp / "cgroup" / ("unified" if hybrid else "")
    group = "/" if namespaced else "/system.slice/edge-agent.service"
    here = mount / group.lstrip("/")
    here.mkdir(parents=True)
    for name, text in own.items():
        (here / name).write_text(text)
    for name, text in (parent or {}).items():
        (here.parent / name).write_text(text)
    lines = ["12:memory:/docker/abc", "1:name=systemd:/x"] if hybrid else []
    (proc / "cgroup").write_text("\n".join([*lines, f"0::{group}"]) + "\n")
    fs = "cgroup2 cgroup2 rw,nsdelegate"
    (proc / "mountinfo").write_text(
        "22 1 0:21 / /proc rw - proc proc rw\n"
        f"35 24 0:30 / {str(mount).replace(' ', chr(92) + '040')} rw,nosuid - {fs}\n"
    )
    return tmp / "proc"


class TestCgroupV2:
    def test_parsers(self) -> None:
        assert cgroup.parse_cpu_max("150000 100000\n") == 1.5
        for bad in ("max 100000", "", "x y", "0 100000", "100 0", "1 2 3"):
            assert cgroup.parse_cpu_max(bad) is None, bad
        assert cgroup.parse_bytes("268435456\n") == 268435456
        assert cgroup.parse_bytes("max\n") is None and cgroup.parse_bytes("-1") is None
        assert cgroup.parse_self_cgroup("4:memory:/a\n0::/user.slice/x\n") == "/user.slice/x"
        assert cgroup.parse_self_cgroup("4:memory:/a\n") is None  # cgroup v1 only
        assert cgroup.parse_cgroup2_mount("1 2 0:3 /ns /sys/fs/my\\040cg rw - cgroup2 c rw") \
            == ("/sys/fs/my cg", "/ns")
        assert cgroup.parse_cgroup2_mount("1 2 0:3 / /sys/fs/cgroup/cpu rw - cgroup c rw") is None

    def test_tightest_limit_from_the_process_up(self, tmp_path: Path) -> None:
        proc = _fake_cgroup(tmp_path / "a b", own={"cpu.max": "max 100000",
                                                   "memory.max": "1073741824",
                                                   "memory.current": "67108864"},
                            parent={"cpu.max": "50000 100000", "memory.max": "max"})
        lim = cgroup.read(proc)
        assert lim == cgroup.Limits(cpu_cores=0.5, memory_bytes=1 << 30,
                                    memory_used_bytes=64 << 20,
                                    path="/system.slice/edge-agent.service")

    def test_hybrid_and_container_namespace(self, tmp_path: Path) -> None:
        proc = _fake_cgroup(tmp_path / "h", own={"cpu.max": "200000 100000"}, hybrid=True)
        assert cgroup.read(proc).cpu_cores == 2.0
        proc = _fake_cgroup(tmp_path / "c", own={"memory.max": "536870912"}, namespaced=True)
        assert cgroup.read(proc) == cgroup.Limits(memory_bytes=512 << 20, path="/")

    def test_no_cgroup_v2_and_damaged_files(self, tmp_path: Path) -> None:
        assert cgroup.read(tmp_path / "no-proc") == cgroup.Limits()
        proc = _fake_cgroup(tmp_path / "d", own={"cpu.max": "lots\n", "memory.max": "\x00\xff",
                                                 "memory.current": ""})
        assert cgroup.read(proc) == cgroup.Limits(path="/system.slice/edge-agent.service")


class TestCpuAndLimitsInTheSample:
    def test_percentages_are_of_what_the_agent_may_use(self, tmp_path: Path) -> None:
        proc = _fake_cgroup(tmp_path, own={"cpu.max": "50000 100000",
                                           "memory.max": str(256 << 20),
                                           "memory.current": str(64 << 20)})
        cpu, wall = iter([1.0, 1.25]), iter([10.0, 11.0])
        s = ResourceSampler(tmp_path, sysfs=tmp_path / "sys", proc=proc,
                            cpu_clock=lambda: next(cpu), wall_clock=lambda: next(wall)).sample()
        assert s["cpu"]["process_percent"] == 25.0  # of one core
        assert s["cpu"]["limit_cores"] == 0.5 and s["cpu"]["available_cores"] == 0.5
        assert s["cpu"]["percent_of_available"] == 50.0  # half of the 0.5-core quota
        mem = s["memory"]
        assert mem["limit_mb"] == 256.0 and mem["total_mb"] == 256.0
        assert mem["available_mb"] <= 192.0 and mem["percent"] >= 25.0
        assert mem["cgroup"] == "/system.slice/edge-agent.service"

    def test_cpu_that_cannot_be_measured_is_unknown_not_zero(self, tmp_path: Path) -> None:
        """qemu-user's /proc/self/stat, a clock that never moved: None, shown as unknown."""
        s = ResourceSampler(tmp_path, sysfs=tmp_path / "sys", proc=tmp_path / "proc",
                            cpu_clock=lambda: 0.0).sample()
        assert s["cpu"]["process_percent"] is None
        assert s["cpu"]["percent_of_available"] is None
        assert s["memory"]["limit_mb"] is None and s["cpu"]["limit_cores"] is None
        snap = {"fps": {"captured": 1.0, "processed": 1.0, "dropped": 0.0}, "latency_ms": {},
                "cpu": s["cpu"], "rss_mb": s["rss_mb"], "camera": {"health": "ok"}}
        assert "| cpu unknown rss" in summary_line(snap)
        json.dumps(s)

    def test_real_clock_sees_this_process_work(self, tmp_path: Path) -> None:
        sampler = ResourceSampler(tmp_path)
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        s = sampler.sample()
        assert s["cpu"]["process_percent"] is not None and s["cpu"]["process_percent"] > 0
        assert 0 < s["cpu"]["available_cores"] <= s["cpu"]["cores"]
