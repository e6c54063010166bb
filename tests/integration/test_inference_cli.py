"""The real CLI: infer / bench / models inspect output, and every bad model's own error."""

from __future__ import annotations

import json

import pytest

from edge_agent.errors import (
    ImageError,
    ModelEmptyError,
    ModelFormatError,
    ModelIOError,
    ModelNotFoundError,
    ModelTruncatedError,
    UnsupportedOpError,
)
from tests.support.helpers import run_cli
from tests.support.inference import (
    blazeface_float,
    build_fake_delegate,
    custom_op_model,
    photo,
    two_input_model,
)


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut")


def test_infer_json_keys_and_human_output(astronaut, tmp_path):
    model = blazeface_float()
    coffee = photo("coffee")
    r = run_cli("infer", str(model), str(astronaut), str(coffee), "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [set(o) for o in lines] == [{"image", "backend", "latency_ms", "detections"}] * 2
    assert lines[0]["image"] == str(astronaut) and lines[0]["backend"].startswith("litert ")
    face = lines[0]["detections"][0]
    assert set(face) >= {"box", "score", "label"} and face["label"] == "face"
    assert lines[1]["detections"] == []
    raw = run_cli("infer", str(model), str(astronaut), "--decoder", "raw", "--json")
    assert json.loads(raw.stdout)["outputs"][0]["shape"] in ([1, 896, 16], [1, 896, 1])
    human = run_cli("infer", str(model), str(astronaut), "--threshold", "0.6", "--threads", "2")
    assert human.returncode == 0 and "face" in human.stdout and "litert" in human.stdout


def test_bench_and_inspect_json():
    model = blazeface_float()
    r = run_cli("bench", str(model), "--runs", "20", "--warmup", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in (
        "backend",
        "threads",
        "raw_invoke_per_s",
        "model_invoke_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ):
        assert key in out
    assert out["threads"] == 1 and out["runs"] == 20 and out["p50_ms"] > 0
    r = run_cli("models", "inspect", str(model), "--json")
    info = json.loads(r.stdout)
    assert info["sha256"] and info["size"] == model.stat().st_size
    assert info["delegate"] == "cpu" and info["backend"].startswith("litert ")
    assert info["inputs"][0]["shape"] == [1, 128, 128, 3]
    assert info["operators"]["CONV_2D"] > 0
    assert info["description"]["decoder"]["name"] == "blazeface"
    text = run_cli("models", "inspect", str(model))
    assert "sha256" in text.stdout and "CONV_2D" in text.stdout


def _bad_models(tmp_path):
    good = blazeface_float()
    data = good.read_bytes()
    (tmp_path / "empty.tflite").write_bytes(b"")
    (tmp_path / "random.tflite").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "truncated.tflite").write_bytes(data[: len(data) // 3])
    return {
        "missing": (tmp_path / "missing.tflite", ModelNotFoundError, "not found"),
        "empty": (tmp_path / "empty.tflite", ModelEmptyError, "empty"),
        "random": (tmp_path / "random.tflite", ModelFormatError, "not a TFLite model"),
        "truncated": (tmp_path / "truncated.tflite", ModelTruncatedError, "truncated"),
        "custom_op": (
            custom_op_model(good, tmp_path / "custom.tflite", "EdgeAgentMadeUpOp"),
            UnsupportedOpError,
            "operator EdgeAgentMadeUpOp is not supported",
        ),
        "two_inputs": (two_input_model(good, tmp_path / "two.tflite"), ModelIOError, "2 inputs"),
    }


def test_each_bad_model_has_its_own_error_and_exit_code(tmp_path, astronaut):
    cases = _bad_models(tmp_path)
    codes = set()
    for name, (path, exc, text) in cases.items():
        r = run_cli("infer", str(path), str(astronaut))
        assert r.returncode == exc.exit_code, (name, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (name, r.stderr)
        assert lines[0].startswith(f"error: {path}: ") and text in lines[0], (name, lines)
        assert "Traceback" not in r.stderr and r.stdout == ""
        codes.add(r.returncode)
    assert len(codes) == len(cases)
    # inspect reports the same errors (the two-input model is fine to inspect)
    r = run_cli("models", "inspect", str(cases["custom_op"][0]))
    assert r.returncode == UnsupportedOpError.exit_code and "EdgeAgentMadeUpOp" in r.stderr


def test_bad_image_is_one_line(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    r = run_cli("infer", str(blazeface_float()), str(bad))
    assert r.returncode == ImageError.exit_code
    assert r.stderr.strip() == f"error: {bad}: cannot decode image (not a JPEG/PNG/BMP/... file?)"


def test_delegates_fall_back_to_cpu_and_say_so(tmp_path, astronaut):
    model = str(blazeface_float())
    lib = build_fake_delegate(tmp_path)
    missing = str(tmp_path / "libdoes_not_exist.so")
    r = run_cli("models", "inspect", model, "--delegate", missing, "--delegate", str(lib), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["delegate"] == "cpu"
    assert len(info["delegate_errors"]) == 2
    why_missing = info["delegate_errors"][0].split("failed to load: ")[1]
    assert info["delegate_errors"][0].startswith(f"{missing}: failed to load")
    assert "fake accelerator: no device found" in info["delegate_errors"][1]
    log = r.stderr.strip().splitlines()  # one line per fallback (log format set by the CLI)
    assert len(log) == 2
    assert log[0].endswith(
        f"delegate {missing} failed to load: {why_missing}; falling back to next delegate {lib}"
    )
    assert log[1].endswith(
        f"delegate {lib} failed to load: fake accelerator: no device found; falling back to CPU"
    )
    # a delegate that loads but fails when applied to the graph also falls back
    from edge_agent.inference import Delegate, Model

    m = Model(model, delegates=[Delegate(str(lib), {"mode": "prepare"})])
    assert m.delegate == "cpu" and "failed to apply" in m.delegate_errors[0]
    # and inference still works, on CPU
    r = run_cli("infer", model, str(astronaut), "--delegate", str(lib), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["detections"][0]["label"] == "face"
    assert "falling back to CPU" in r.stderr


def test_infer_classifiers_json(tmp_path, astronaut):
    import cv2
    import numpy as np

    from tests.support.helpers import DATA
    from tests.support.inference import model_path

    data = np.load(DATA / "digits_test.npz")
    paths = []
    for i in range(3):
        p = tmp_path / f"digit{i}.png"
        cv2.imwrite(str(p), data["images"][i])
        paths.append(str(p))
    r = run_cli("infer", str(model_path("digits_int8.tflite")), *paths, "--json")
    assert r.returncode == 0, r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [set(o) for o in outs] == [{"image", "backend", "latency_ms", "classes"}] * 3
    assert [o["classes"][0]["label"] for o in outs] == [str(v) for v in data["labels"][:3]]
    assert len(outs[0]["classes"]) == 3  # top_k from the description
    # uint8-input MobileNetV2 (random weights: only the shape of the answer is meaningful)
    r = run_cli("infer", str(model_path("mobilenet_v2_int8.tflite")), str(astronaut), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["classes"]) == 5


def test_forcing_a_missing_backend_is_one_line(astronaut):
    from edge_agent.errors import BackendError
    from edge_agent.inference import select_backend

    try:
        select_backend("tflite_runtime")
    except BackendError:
        pass
    else:
        pytest.skip("tflite-runtime is installed here")
    r = run_cli("infer", str(blazeface_float()), str(astronaut), "--backend", "tflite_runtime")
    assert r.returncode == BackendError.exit_code
    assert r.stderr.count("\n") == 1 and "tflite_runtime" in r.stderr and "pip install" in r.stderr


def test_runtime_settings_come_from_the_config_unless_flags_say_otherwise(tmp_path):
    model = str(blazeface_float())
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        "[model]\nthreads = 2\n"
        '[[model.delegates]]\nlibrary = "libnot_installed_npu.so"\noptions = { device = "0" }\n'
    )
    r = run_cli("models", "inspect", model, "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["threads"] == 2 and info["delegate"] == "cpu"
    assert info["delegate_errors"][0].startswith("libnot_installed_npu.so: failed to load")
    r = run_cli("models", "inspect", model, "-c", str(cfg), "--threads", "1", "--json")
    assert json.loads(r.stdout)["threads"] == 1
    cfg.write_text("[model]\nthreads = 0\n")
    r = run_cli("bench", model, "--config", str(cfg), "--runs", "2")
    assert r.returncode == 2 and "model.threads" in r.stderr and r.stderr.count("\n") == 1
