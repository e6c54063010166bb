"""Quantise / dequantise round trips (per-tensor and per-channel) and the input tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_agent.inference import ModelDescription, Quantization, TensorSpec
from edge_agent.inference.preprocess import build_lut

DTYPES = st.sampled_from([np.uint8, np.int8])
SCALES = st.floats(min_value=1e-4, max_value=10.0, allow_nan=False)


def _zp(dtype: type, draw_int: int) -> int:
    info = np.iinfo(dtype)
    return int(info.min + draw_int % (int(info.max) - int(info.min) + 1))


@given(DTYPES, SCALES, st.integers(0, 255), st.data())
def test_per_tensor_round_trip(dtype, scale, zp_seed, data):
    zp = _zp(dtype, zp_seed)
    q = Quantization.per_tensor(scale, zp)
    info = np.iinfo(dtype)
    values = data.draw(
        hnp.arrays(dtype, st.integers(1, 64), elements=st.integers(info.min, info.max))
    )
    # every representable integer survives dequantise -> quantise exactly
    assert np.array_equal(q.quantize(q.dequantize(values), dtype), values)
    # a real value inside the representable range comes back within half a step
    lo, hi = (info.min - zp) * scale, (info.max - zp) * scale
    real = data.draw(hnp.arrays(np.float64, 8, elements=st.floats(lo, hi)))
    err = np.abs(q.dequantize(q.quantize(real, dtype)) - real)
    assert np.all(err <= scale * 0.5 * (1 + 1e-5) + 1e-6)


@given(DTYPES, st.data())
def test_quantize_saturates(dtype, data):
    q = Quantization.per_tensor(0.1, 0)
    info = np.iinfo(dtype)
    out = q.quantize([1e9, -1e9], dtype)
    assert out.tolist() == [info.max, info.min]


@given(DTYPES, st.integers(1, 4), st.data())
def test_per_channel_round_trip(dtype, ndim, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    axis = data.draw(st.integers(0, ndim - 1))
    n = shape[axis]
    scales = np.array(data.draw(st.lists(SCALES, min_size=n, max_size=n)), np.float32)
    zps = [_zp(dtype, z) for z in data.draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))]
    q = Quantization.per_channel(scales, zps, axis)
    info = np.iinfo(dtype)
    values = data.draw(hnp.arrays(dtype, shape, elements=st.integers(info.min, info.max)))
    assert np.array_equal(q.quantize(q.dequantize(values), dtype), values)
    # each channel uses its own scale: compare with a per-slice computation
    real = q.dequantize(values)
    for c in range(n):
        sl = np.take(values, c, axis=axis).astype(np.float32)
        expect = (sl - zps[c]) * scales[c]
        assert np.allclose(np.take(real, c, axis=axis), expect, rtol=1e-6, atol=1e-6)


def test_from_interpreter_details():
    det = {
        "name": "x",
        "index": 3,
        "shape": np.array([1, 4]),
        "dtype": np.int8,
        "quantization_parameters": {
            "scales": np.array([0.5, 0.25], np.float32),
            "zero_points": np.array([0, 1], np.int32),
            "quantized_dimension": 1,
        },
    }
    spec = TensorSpec.from_details(det)
    assert spec.quantization.per_channel_axis == 1
    assert spec.to_json()["quantization"] == {
        "axis": 1,
        "scales": [0.5, 0.25],
        "zero_points": [0, 1],
    }
    assert not TensorSpec.from_details(
        {**det, "quantization_parameters": {}}
    ).quantization.quantized


def _spec(dtype, q=None, channels=3):
    return TensorSpec("in", 0, (1, 8, 6, channels), np.dtype(dtype), q or Quantization())


@pytest.mark.parametrize(
    "normalize, real",
    [
        ("raw", lambda p: p),
        ("unit", lambda p: p / 255.0),
        ("symmetric", lambda p: p / 127.5 - 1.0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_float_tables(normalize, real, dtype):
    lut = build_lut(_spec(dtype), ModelDescription(normalize=normalize), 3)
    p = np.arange(256, dtype=np.float64)
    assert lut.dtype == dtype and lut.shape == (256, 3)
    assert np.allclose(lut[:, 1].astype(np.float64), real(p), rtol=1e-3, atol=1e-3)


def test_meanstd_per_channel_and_gray():
    desc = ModelDescription(normalize="meanstd", mean=[10, 20, 30], std=[2, 4, 5])
    lut = build_lut(_spec(np.float32), desc, 3)
    assert lut[100].tolist() == pytest.approx([45.0, 20.0, 14.0])
    gray = ModelDescription(color="gray", normalize="meanstd", mean=[128], std=[64])
    assert build_lut(_spec(np.float32, channels=1), gray, 1)[192, 0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "dtype, scale, zp, normalize",
    [
        (np.int8, 1 / 255, -128, "unit"),  # digits int8: q = p - 128
        (np.uint8, 1 / 127.5, 127, "symmetric"),  # MobileNetV2 uint8
        (np.int8, 1 / 128, 0, "symmetric"),
        (np.uint8, 1.0, 0, "raw"),
    ],
)
def test_quantised_tables_use_the_inputs_scale(dtype, scale, zp, normalize):
    q = Quantization.per_tensor(scale, zp)
    lut = build_lut(_spec(dtype, q), ModelDescription(normalize=normalize), 3)
    real = {"unit": lambda p: p / 255, "symmetric": lambda p: p / 127.5 - 1, "raw": lambda p: p}
    p = np.arange(256, dtype=np.float64)
    info = np.iinfo(dtype)
    scale32 = float(np.float32(scale))  # TFLite stores scales as float32
    expect = np.clip(np.rint(real[normalize](p) / scale32) + zp, info.min, info.max)
    assert lut.dtype == dtype
    assert np.array_equal(lut[:, 0].astype(np.int64), expect.astype(np.int64))


def test_per_channel_quantised_input_table():
    q = Quantization.per_channel([1 / 255, 2 / 255, 4 / 255], [0, 10, -5], axis=3)
    lut = build_lut(_spec(np.int8, q), ModelDescription(normalize="unit"), 3)
    assert lut[200].tolist() == [127, 110, 45]  # 200 saturates; 100+10; 50-5
