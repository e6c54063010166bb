"""LiteRT's CompiledModel as the Model's engine (``[model] accelerator``): on the CPU it gives
the Interpreter's outputs bit for bit on every shipped model; accelerators that are not there
fall back in order and say so; what runs is reported by inspect, bench and the agent."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.runner_loader import RunnerLoader
from edge_agent.config import Config, ModelConfig
from edge_agent.errors import ModelError
from edge_agent.inference import Model, Runner
from edge_agent.inference.bench import bench_invoke
from edge_agent.inference.compiled import engine_info
from tests.support.helpers import MODELS, run_cli

SHIPPED = ["digits_int8", "digits_float32", "blazeface_float32", "blazeface_int8",
           "mobilenet_v2_int8"]


def random_input(model: Model, seed: int) -> np.ndarray:
    spec = model.inputs[0]
    rng = np.random.default_rng(seed)
    if np.issubdtype(spec.dtype, np.floating):
        return rng.random(spec.shape).astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    return rng.integers(info.min, info.max, size=spec.shape, endpoint=True).astype(spec.dtype)


@pytest.mark.parametrize("name", SHIPPED)
def test_cpu_outputs_equal_the_interpreters(name: str) -> None:
    path = MODELS / f"{name}.tflite"
    ref = Model(path)
    cm = Model(path, accelerators=["cpu"])
    assert cm.engine is not None and cm.engine.accelerator == "cpu"
    assert cm.delegate == "compiled_model:cpu" and cm.interpreter is None
    assert [t.name for t in cm.outputs] == [t.name for t in ref.outputs]
    for seed in range(3):
        x = random_input(ref, seed)
        ref.set_input(0, x)
        view = cm.input_view(0)  # the pipeline's path: write into the input view
        view[...] = x
        del view
        ref.invoke()
        cm.invoke()
        for a, b in zip(ref.outputs_all(), cm.outputs_all(), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b), (name, seed)
    assert cm.operators() == ref.operators()  # read at load, before the Interpreter is let go


def test_runner_results_equal_on_a_real_frame() -> None:
    import cv2

    cap = cv2.VideoCapture(str(MODELS / "demo_astronaut.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    path = MODELS / "blazeface_int8.tflite"
    a, _ = Runner.open(path).run(frame)
    b, _ = Runner.open(path, accelerators=["cpu"]).run(frame)
    assert a.to_json() == b.to_json() and len(a.detections) == 1


def test_unavailable_accelerators_fall_back_in_order_and_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "edge_agent.inference"):
        m = Model(MODELS / "digits_float32.tflite", accelerators=["npu", "gpu", "cpu"])
    assert m.engine is not None
    if m.engine.accelerator != "cpu":
        pytest.skip(f"this machine has a working {m.engine.accelerator}")
    assert [e.split(":")[0] for e in m.engine.errors] == ["npu", "gpu"]
    assert "accelerator npu unavailable for digits_float32.tflite" in caplog.text
    assert "falling back to gpu" in caplog.text and "falling back to cpu" in caplog.text
    s = m.summary()
    assert s["engine"] == "compiled_model" and s["accelerator"] == "cpu"
    assert s["fully_accelerated"] is True and len(s["accelerator_errors"]) == 2
    assert engine_info(m) == {"accelerator": "cpu", "fully_accelerated": True}


def test_none_usable_or_misconfigured_is_a_model_error() -> None:
    path = MODELS / "digits_float32.tflite"
    try:
        m = Model(path, accelerators=["npu"])
    except ModelError as exc:
        assert "no accelerator of ['npu'] could compile the model" in str(exc)
    else:
        assert m.engine is not None and m.engine.accelerator == "npu"  # a machine with an NPU
    with pytest.raises(ModelError, match="each must be one of npu, gpu, cpu"):
        Model(path, accelerators=["tpu"])
    with pytest.raises(ModelError, match="two engines"):
        Model(path, accelerators=["cpu"], delegates=[("libnothing.so", {})])
    with pytest.raises(ValueError, match="accelerator"):
        ModelConfig(accelerator=["tpu"])  # type: ignore[list-item]


def test_config_runner_loader_and_engine_info() -> None:
    cfg = Config(model=ModelConfig(accelerator=["cpu"]))
    runner = RunnerLoader(cfg)(MODELS / "digits_int8.tflite")
    assert engine_info(runner.model) == {"accelerator": "cpu", "fully_accelerated":
                                         runner.model.engine.fully_accelerated}
    assert engine_info(Model(MODELS / "digits_int8.tflite")) == {"accelerator": None}


def test_bench_and_inspect_report_the_engine(tmp_path: Path) -> None:
    b = bench_invoke(str(MODELS / "digits_int8.tflite"), runs=20, warmup=2,
                     accelerators=["cpu"]).to_json()
    assert b["engine"] == "compiled_model" and b["accelerator"] == "cpu"
    assert b["delegate"] == "compiled_model:cpu" and b["raw_p50_ms"] > 0  # the Interpreter beside
    r = run_cli("models", "inspect", str(MODELS / "blazeface_float32.tflite"),
                "--accelerator", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["engine"] == "compiled_model" and info["accelerator"] == "cpu"
    r = run_cli("models", "inspect", str(MODELS / "blazeface_float32.tflite"),
                "--accelerator", "cpu")
    assert "engine    CompiledModel on cpu, fully accelerated yes" in r.stdout
