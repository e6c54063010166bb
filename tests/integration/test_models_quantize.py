"""`edge-agent models quantize` on the real shipped float models, with ai-edge-quantizer (the
`modelops` extra, no TensorFlow). Few calibration frames keep it cheap; the 100-frame wall
time is in benchmarks/quantize.py."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.errors import ExitCode
from edge_agent.inference import Runner
from edge_agent.inference.agreement import box_iou
from edge_agent.modelops import graph
from tests.support.helpers import DATA, cli_env, run_cli
from tests.support.inference import astronaut_face, exp_model, model_path, photo

DIGITS = np.load(DATA / "digits_test.npz")


def flat_digits(folder: Path, start: int, stop: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(start, stop):
        assert cv2.imwrite(str(folder / f"{n:03d}.png"), DIGITS["images"][n])
    return folder


def top1_accuracy(model: Path, start: int) -> float:
    runner = Runner.open(model)
    hits = [
        runner.run(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))[0].classes[0].class_id == int(label)
        for img, label in zip(DIGITS["images"][start:], DIGITS["labels"][start:], strict=True)
    ]
    return 100.0 * sum(hits) / len(hits)


@pytest.fixture(scope="module")
def blazeface_int8(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "bf_int8.tflite"
    r = run_cli("models", "quantize", str(model_path("blazeface_float32.tflite")),
                "--calibrate", "demo", "--frames", "12", "--out", str(out),
                "--report", str(out.with_name("report.json")), timeout=300)
    assert r.returncode == 0, r.stderr
    return out, r


def test_blazeface_from_the_demo_clip_finds_the_face(blazeface_int8):
    out, r = blazeface_int8
    # every lesson of the hand-made int8 BlazeFace is applied, and said so
    for step in ("mend-opcodes", "fold-dequantize", "fuse-activations", "add-signature"):
        assert f"applied   {step}:" in r.stdout
    assert "74 float16 constant(s)" in r.stdout and "17 standalone RELU" in r.stdout
    assert "calibrated on 12 frames from demo" in r.stdout
    assert "range     input: [-1, 1]" in r.stdout
    assert "range     classificators: [-16, 16]" in r.stdout
    assert r.stderr == ""  # no quantizer chatter, no runtime lines
    # the description is carried over beside the result
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(
        model_path("blazeface_float32.json").read_text())
    runner = Runner.open(out)
    assert [t.dtype.name for t in runner.model.inputs + runner.model.outputs] == ["int8"] * 3
    ops = runner.model.operators()
    assert ops.count("DELEGATE") == 1 and "RELU" not in ops  # one XNNPACK partition
    assert graph.float_ops(out.read_bytes()) == []
    result, _ = runner.run(cv2.imread(str(photo("astronaut"))))
    assert result.detections, "the int8 model found no face in astronaut.jpg"
    best = max(result.detections, key=lambda d: d.score)
    assert box_iou(best.box, astronaut_face()) >= 0.5
    assert best.score >= 0.6
    report = json.loads(out.with_name("report.json").read_text())["quantize"]
    assert report["calibration_frames"] == 12
    assert [s["step"] for s in report["steps"]] == [
        "mend-opcodes", "fold-dequantize", "fuse-activations", "add-signature"]
    assert report["size"] == out.stat().st_size
    assert report["float_size"] == model_path("blazeface_float32.tflite").stat().st_size


def test_digits_int8_within_one_point_and_io_types(tmp_path):
    calib = flat_digits(tmp_path / "calib", 0, 100)  # calibrate on 100, measure on the other 350
    float_acc = top1_accuracy(model_path("digits_float32.tflite"), 100)
    uint8_float = ["--input-type", "uint8", "--output-type", "float"]
    for extra, types in (([], ("int8", "int8")),
                         (uint8_float, ("uint8", "float32")),
                         (["--mode", "int8-float-io"], ("float32", "float32"))):
        out = tmp_path / f"digits_{'_'.join(types)}.tflite"
        r = run_cli("models", "quantize", str(model_path("digits_float32.tflite")), "--calibrate",
                    str(calib), "--frames", "40", "--out", str(out), "--json", *extra)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        assert (rep["inputs"][0]["dtype"], rep["outputs"][0]["dtype"]) == types
        assert rep["calibration_frames"] == 40
        acc = top1_accuracy(out, 100)
        assert abs(acc - float_acc) <= 1.0, f"{types}: int8 {acc:.2f} % vs float {float_acc:.2f} %"
    assert rep["steps"][0]["step"] == "input-type"


def test_an_op_that_cannot_be_quantised_is_named(tmp_path):
    model = exp_model(model_path("digits_float32.tflite"), tmp_path / "exp.tflite")
    desc = str(model_path("digits_float32.json"))
    calib = flat_digits(tmp_path / "calib", 0, 8)
    r = run_cli("models", "quantize", str(model), "--calibrate", str(calib), "--frames", "8",
                "--out", str(tmp_path / "q.tflite"), "--description", desc)
    assert r.returncode == ExitCode.UNQUANTIZABLE_OP, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line
    assert "operator EXP (op #7) cannot be quantised to int8" in line
    assert "--mode dynamic" in line and "--mode int16x8" in line
    assert not (tmp_path / "q.tflite").exists()
    # the suggested fallback works
    r = run_cli("models", "quantize", str(model), "--mode", "dynamic", "--out",
                str(tmp_path / "d.tflite"), "--description", desc, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibration_frames"] == 0


def test_bad_inputs_get_one_line(tmp_path):
    out = str(tmp_path / "q.tflite")
    int8 = str(model_path("digits_int8.tflite"))
    cases = [
        ((int8, "--calibrate", "demo"), ExitCode.QUANTIZE, "expects a float model"),
        ((str(model_path("digits_float32.tflite")), "--calibrate", str(tmp_path / "none")),
         ExitCode.SOURCE, "none"),
        ((str(model_path("digits_float32.tflite")),), ExitCode.QUANTIZE, "needs calibration"),
        ((str(model_path("digits_float32.tflite")), "--mode", "int4"), ExitCode.QUANTIZE,
         "unknown mode 'int4'"),
        ((str(model_path("digits_float32.tflite")), "--mode", "dynamic", "--input-type", "uint8"),
         ExitCode.QUANTIZE, "apply to --mode int8 only"),
        ((str(tmp_path / "missing.tflite"), "--calibrate", "demo"), ExitCode.MODEL_NOT_FOUND,
         "not found"),
    ]
    for args, code, text in cases:
        r = run_cli("models", "quantize", *args, "--out", out)
        assert r.returncode == code, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and text in r.stderr, r.stderr
        assert not Path(out).exists()


def test_without_the_quantizer_the_error_says_what_to_install(tmp_path):
    block = ("import sys\nclass B:\n def find_spec(self, n, *a):\n"
             "  if n.split('.')[0] == 'ai_edge_quantizer': raise ImportError('blocked')\n"
             "sys.meta_path.insert(0, B())\nfrom edge_agent.cli.main import main\n"
             "sys.argv[0] = 'edge-agent'\nmain()\n")
    r = subprocess.run(
        [sys.executable, "-c", block, "models", "quantize",
         str(model_path("digits_float32.tflite")), "--calibrate", "demo", "--out",
         str(tmp_path / "q.tflite")],
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False)
    assert r.returncode == ExitCode.QUANTIZE, r.stderr
    assert "pip install -e '.[modelops]'" in r.stderr


def test_progress_bar_on_a_terminal(tmp_path):
    """Under a real pty the command draws its calibration progress bar."""
    calib = flat_digits(tmp_path / "calib", 0, 20)
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "edge_agent", "models", "quantize",
                                   str(model_path("digits_float32.tflite")), "--calibrate",
                                   str(calib), "--frames", "20", "--out",
                                   str(tmp_path / "q.tflite")], cli_env(COLUMNS="100"))
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "calibrating" in text and "20/20" in text, text


def test_a_never_ending_source_is_capped_by_frames(tmp_path):
    """A live-like source (the synthetic camera never ends) stops at --frames."""
    out = tmp_path / "q.tflite"
    r = run_cli("models", "quantize", str(model_path("digits_float32.tflite")), "--calibrate",
                "synthetic", "--frames", "7", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["calibration_frames"] == 7 and rep["source"] == "synthetic"
    assert out.is_file() and out.with_suffix(".json").is_file()
