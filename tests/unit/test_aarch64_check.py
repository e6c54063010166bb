"""scripts/aarch64_check.py's pure parts: apt sources, the LiteRT floor, the comparisons.

The check itself (qemu, the arm64 root, the wheels, the emulated commands) is a CI step of its
own (.ci/run), minutes long; here: what it decides from what it reads.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from edge_agent.telemetry.snapshot import final_summary, summary_line
from tests.support.helpers import ROOT


def _script() -> ModuleType:
    path = ROOT / "scripts" / "aarch64_check.py"
    spec = importlib.util.spec_from_file_location("aarch64_check", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["aarch64_check"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


ac = _script()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEVICE = (ROOT / "constraints" / "device.txt").read_text()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_sources_one_line_and_deb822() -> None:
    one = ("# comment\ndeb http://mirror.example/debian bookworm main contrib\n"
           "deb-src http://mirror.example/debian bookworm main\n"
           "deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security "
           "bookworm-security main\n")
    got = ac.parse_sources(one, deb822=False)
    assert [(s.uri, s.suite, s.components, s.signed_by) for s in got] == [
        ("http://mirror.example/debian", "bookworm", ("main", "contrib"), None),
        ("http://sec.example/debian-security", "bookworm-security", ("main",), "/k.gpg"),
    ]
    stanzas = ("Types: deb\n# a comment\nURIs: http://deb.example/debian\n"
               "Suites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\n"
               "Types: deb\nURIs: http://deb.example/debian-security\n"
               "Suites: bookworm-security\nComponents: main\n\n"
               "Types: deb\nEnabled: no\nURIs: http://off.example\nSuites: x\nComponents: main\n")
    got = ac.parse_sources(stanzas, deb822=True)
    assert [s.suite for s in got] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert ac.debian_mirrors(got) == ("http://deb.example/debian",
                                      "http://deb.example/debian-security")
    text = ac.arm64_sources(*ac.debian_mirrors(got))
    assert text.count("[arch=arm64 ") == 3 and " bookworm-updates main" in text
    # no Debian entry at all (a bare or foreign sources list): Debian's own address
    assert ac.debian_mirrors([]) == ("http://deb.debian.org/debian", None)


def test_floor_is_pyprojects_and_device_pins_cover_every_dependency() -> None:
    floor = ac.litert_floor(PYPROJECT["dependencies"])
    assert re.fullmatch(r"\d+(\.\d+)+", floor)
    pinned = {_norm(m[1]): m[2] for m in re.finditer(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)$", DEVICE)}
    for dep in PYPROJECT["dependencies"]:
        name = _norm(re.match(r"[A-Za-z0-9_.-]+", dep)[0])  # type: ignore[index]
        if "python_version < '3.11'" not in dep:  # tomli: the devices' Python is 3.11
            assert name in pinned, f"constraints/device.txt pins no {name}"
    device_litert = ac.pinned(DEVICE, "ai-edge-litert")
    as_tuple = [tuple(int(x) for x in v.split(".")) for v in (floor, device_litert)]
    assert as_tuple[1] >= as_tuple[0], "the device pin is below pyproject's floor"
    swapped = ac.floor_constraints(DEVICE, floor)
    assert ac.pinned(swapped, "ai-edge-litert") == floor
    assert len(re.findall(r"(?mi)^ai-edge-litert==", swapped)) == 1
    assert ac.pinned(swapped, "numpy") == ac.pinned(DEVICE, "numpy")


def _det(box: list[float], score: float) -> dict[str, Any]:
    return {"box": box, "score": score, "label": "face"}


def test_infer_comparison_boxes_scores_classes() -> None:
    x86 = [{"image": "a.jpg", "detections": [_det([10, 10, 50, 50], 0.93)]},
           {"image": "b.jpg", "classes": [{"label": "3", "score": 0.8},
                                          {"label": "5", "score": 0.2}]}]
    ok, what = ac.compare_infer(x86, x86)
    assert ok and "IoU min 1.0000" in what and "|score diff| max 0.0000" in what
    moved = [{"image": "a.jpg", "detections": [_det([12, 10, 52, 50], 0.93)]}, x86[1]]
    ok, what = ac.compare_infer(x86, moved)
    assert not ok and "IoU min 0.90" in what
    rescored = [{"image": "a.jpg", "detections": [_det([10, 10, 50, 50], 0.90)]}, x86[1]]
    ok, what = ac.compare_infer(x86, rescored)
    assert not ok and "|score diff| max 0.0300" in what
    extra = [{"image": "a.jpg", "detections": [_det([10, 10, 50, 50], 0.93),
                                               _det([100, 100, 150, 150], 0.7)]}, x86[1]]
    ok, what = ac.compare_infer(x86, extra)
    assert not ok and "a.jpg: 1 detections on x86, 2 on aarch64, 1 matched" in what
    swapped = [x86[0], {"image": "b.jpg", "classes": [{"label": "5", "score": 0.8},
                                                      {"label": "3", "score": 0.2}]}]
    ok, what = ac.compare_infer(x86, swapped)
    assert not ok and "b.jpg: top-1 ['3'] on x86, ['5'] on aarch64" in what
    ok, what = ac.compare_infer(x86, x86[:1])
    assert not ok and "2 images on x86, 1 on aarch64" in what


def test_inspect_comparison_names_what_differs() -> None:
    a = {"sha256": "ab", "size": 1, "inputs": [{}], "outputs": [{}, {}], "operators": {"ADD": 1},
         "operator_count": 1, "description": {}, "delegate": "cpu", "backend": "litert 2.3.0"}
    assert ac.compare_inspect(a, {**a, "backend": "other"})[0]  # the label is not compared
    ok, what = ac.compare_inspect(a, {**a, "operators": {"ADD": 2}, "size": 2})
    assert not ok and what == "differs in size, operators"


def test_run_output_read_from_the_agents_own_lines() -> None:
    """The console lines as the agent's own formatters write them (telemetry.snapshot)."""
    snap = {"fps": {"captured": 4.0, "processed": 2.0, "dropped": 2.0}, "latency_ms": {},
            "cpu": {"process_percent": 34.2}, "rss_mb": 200.0, "camera": {"health": "ok"}}
    unknown = {**snap, "cpu": {"process_percent": None}}
    totals = {"invoke": {"p50": 0.6804, "p95": 1.2}, "e2e": {"p50": 0.7, "p95": 1.3}}
    counters = {"captured": 40, "processed": 20, "dropped": 20, "errors": 0}
    out = "\n".join([summary_line(unknown), summary_line(snap),
                     final_summary(totals, counters, 9.5) + " | first result 2.0 s"])
    got = ac.parse_run(out)
    assert (got["processed"], got["errors"], got["cpu"]) == (20, 0, "34%")
    assert got["invoke_p50"] is not None
    assert ac.parse_run(summary_line(unknown))["cpu"] == "unknown"
    assert ac.parse_run("no summary")["processed"] is None
