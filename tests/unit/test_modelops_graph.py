"""Graph surgery for quantisation (edge_agent.modelops.graph) on the real shipped models."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edge_agent.modelops import graph
from tests.support.inference import model_path


def outputs(data: bytes, x: np.ndarray) -> list[np.ndarray]:
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.astype(it.get_input_details()[0]["dtype"]))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


@pytest.fixture(scope="module")
def blazeface() -> bytes:
    return model_path("blazeface_float32.tflite").read_bytes()


def test_prepare_blazeface_applies_every_step_and_keeps_outputs(blazeface):
    prepared, steps = graph.prepare(blazeface)
    assert [s.name for s in steps] == [
        "mend-opcodes", "fold-dequantize", "fuse-activations", "add-signature"]
    assert "74 float16" in steps[1].detail and "17 standalone" in steps[2].detail
    ops = graph.operator_names(prepared)
    assert "DEQUANTIZE" not in ops and "RELU" not in ops
    assert len(ops) == len(graph.operator_names(blazeface)) - 74 - 17
    x = np.random.default_rng(1).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    for a, b in zip(outputs(blazeface, x), outputs(prepared, x), strict=True):
        assert np.array_equal(a, b)  # bit-identical float graph
    it = Interpreter(model_content=prepared)
    sig = {"inputs": ["input"], "outputs": ["classificators", "regressors"]}  # names sorted
    assert it.get_signature_list() == {"serving_default": sig}
    # idempotent: a prepared model needs nothing more
    again, more = graph.prepare(prepared)
    assert more == [] and again == prepared


def test_a_modern_model_is_left_alone():
    data = model_path("digits_float32.tflite").read_bytes()
    prepared, steps = graph.prepare(data)
    assert steps == [] and prepared == data


def test_range_chain_follows_reshape_and_concat(blazeface):
    prepared, _ = graph.prepare(blazeface)
    names = graph.range_chain(prepared, 1)
    assert names[0] == "classificators"
    assert sorted(names) == sorted(
        ["classificators", "reshape", "reshape_2", "classificator_8", "classificator_16"])
    digits = model_path("digits_float32.tflite").read_bytes()
    assert graph.range_chain(digits, 0) == ["StatefulPartitionedCall_1:0"]  # softmax: no chain


def test_float_ops_and_io_types():
    int8 = model_path("digits_int8.tflite").read_bytes()
    assert graph.float_ops(int8) == []
    assert [n for _, n in graph.float_ops(model_path("digits_float32.tflite").read_bytes())][:2] \
        == ["CONV_2D", "CONV_2D"]
    same, steps = graph.set_io_types(int8, "int8", "int8")
    assert steps == [] and same == int8
    data, steps = graph.set_io_types(int8, "uint8", "float32")
    assert [s.name for s in steps] == ["input-type", "output-type"]
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert (inp["dtype"], out["dtype"]) == (np.uint8, np.float32)
    assert inp["quantization"][1] == -128 + 128  # same scale, zero point moved by 128
    assert inp["name"] == "serving_default_pixels:0"  # the interface keeps its names
    assert it.get_signature_list()["serving_default"]["inputs"] == ["pixels"]
    # the same digit through both interfaces gives the same scores
    img = np.load(model_path("digits_float32.tflite").parents[1] / "tests/data/digits_test.npz")[
        "images"][0].astype(np.int16)
    q_in = (img - 128).astype(np.int8)[None, :, :, None]
    (raw,) = outputs(int8, q_in)
    (real,) = outputs(data, (img).astype(np.uint8)[None, :, :, None])
    np.testing.assert_allclose(real, (raw.astype(np.float32) + 128) / 256, atol=1e-6)
