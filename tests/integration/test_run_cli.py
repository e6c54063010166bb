"""`edge-agent run` as a real subprocess: bad config exits 2 with one line; signals stop it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.helpers import MODELS, ROOT, cli_env, run_cli


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[device]\nstate_dir = "{tmp_path / "state"}"\n' + body, encoding="utf-8"
    )
    return path


DIGITS = f'[model]\npath = "{MODELS / "digits_int8.tflite"}"\n'

GOOD = f"""
[model]
path = "{MODELS / "digits_int8.tflite"}"
[camera]
source = "synthetic"
width = 96
height = 72
fps = 60
[metrics]
interval_s = 0.3
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[camera]\nsorce = 'synthetic'\n", "camera.sorce: unknown key"),
        ("[model]\nthreads = 'many'\n", "model.threads"),
        ("[model]\npath = 'missing.tflite'\n", "model.path: "),
        (DIGITS + "[camera]\nsource = 'rtsp://cam:99999/x'\n", "camera.source: rtsp://cam"),
        (DIGITS + "[camera]\nsource = 'rtps://cam/x'\n", "unknown stream scheme 'rtps'"),
        (DIGITS + "[camera]\nsource = 'no/such/clip.mp4'\n", "camera.source: "),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, body: str, expected: str) -> None:
    cfg = write_config(tmp_path, body)
    proc = run_cli("run", "--config", str(cfg), "--frames", "1", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert "Traceback" not in proc.stderr


def test_frames_limit_prints_summary(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, GOOD.replace("fps = 60", "fps = 1000"))
    proc = run_cli("run", "--config", str(cfg), "--frames", "15", timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert "processed 15" in last and "stop: frame limit reached" in last
    assert "threads left 0" in last


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_with_final_summary(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = write_config(tmp_path, GOOD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(5)]  # console.banner: 5 lines
        assert banner[0].startswith("edge-agent: model "), banner
        first = proc.stdout.readline()  # the first interval summary: running
        assert first.startswith("fps in "), (banner, first)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("done: ") and f"stop: {sig.name} in " in last, last
    assert "threads left 0" in last and "Traceback" not in err
    # the agent's own shutdown clock: bounded by its stop time limits (1.8 s), not by luck
    shutdown_s = float(last.split(f"stop: {sig.name} in ")[1].split(" s")[0])
    assert shutdown_s < 2.0
    print(f"{sig.name}: stopped in {stopped_in:.2f} s")


def test_bench_three_ways_json(tmp_path: Path) -> None:
    from edge_agent.camera.clips import synthetic_frames, write_clip

    clip = tmp_path / "clip.avi"
    write_clip(clip, synthetic_frames(30, 160, 120))
    proc = run_cli(
        "bench", str(MODELS / "digits_int8.tflite"), "--source", str(clip), "--frames", "30",
        "--json", timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("raw_fps", "naive_fps", "pipeline_fps", "e2e_p50_ms", "e2e_p95_ms",
                "invoke_p50_ms", "rss_mb"):
        assert report[key] > 0, key
    assert report["frames"] == 30 and report["e2e_p50_ms"] >= report["invoke_p50_ms"]


def test_bench_bad_source_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "bench", str(MODELS / "digits_int8.tflite"), "--source", str(tmp_path / "none.avi"),
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and "none.avi" in proc.stderr


def test_video_file_without_loop_ends_the_run(tmp_path: Path) -> None:
    from edge_agent.camera.clips import synthetic_frames, write_clip

    clip = tmp_path / "clip.avi"
    write_clip(clip, synthetic_frames(12, 160, 120))
    cfg = write_config(
        tmp_path, DIGITS + f'[camera]\nsource = "{clip}"\nloop = false\npolicy = "all"\n'
    )
    proc = run_cli("run", "--config", str(cfg), "--frames", "100", timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert "captured 12 processed 12 dropped 0" in last and "stop: source ended" in last


def test_bad_environment_override_exits_2(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--frames", "1", env=cli_env(EDGE_AGENT_CAMERA__FPS="fast"), timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "camera.fps" in lines[0], lines


def test_plain_password_in_the_config_is_logged_as_a_warning(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, GOOD + '[mqtt]\nusername = "u"\npassword = "s3cret"\n')
    proc = run_cli("run", "--config", str(cfg), "--frames", "3", timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "mqtt.password is written" in ln]
    line = cfg.read_text().splitlines().index('password = "s3cret"') + 1
    assert len(lines) == 1 and "WARNING" in lines[0] and f"{cfg}:{line}:" in lines[0], lines
    assert "mqtt.password_file" in lines[0] and "s3cret" not in proc.stderr


def test_run_labels_flag_names_the_classes(tmp_path: Path) -> None:
    """``run --labels`` takes an ``ID: name`` file over the model's description; a labels file
    with a duplicate id stops the start with one line."""
    labels = tmp_path / "ids.txt"
    labels.write_text("".join(f"{i}: digit-{i}\n" for i in range(10)))
    cfg = write_config(tmp_path, GOOD + "[pipeline]\nstdout_jsonl = true\n")
    proc = run_cli("run", "--config", str(cfg), "--frames", "3", "--labels", str(labels),
                   timeout=60)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    names = {c["label"] for r in records for c in r["classes"]}
    assert records and names and all(n.startswith("digit-") for n in names), records[:1]
    labels.write_text("0: a\n0: b\n")
    proc = run_cli("run", "--config", str(cfg), "--frames", "1", "--labels", str(labels),
                   timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "appears twice" in lines[0], lines
