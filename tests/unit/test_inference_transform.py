"""Coordinate maths of stretch / letterbox / crop, and the real preprocessor agreeing with it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge_agent.inference import ModelDescription, Preprocessor, Quantization, TensorSpec
from edge_agent.inference.transform import plan_resize

MODES = st.sampled_from(["stretch", "letterbox", "crop"])
SIDE = st.integers(min_value=8, max_value=2000)
MODEL_SIDE = st.integers(min_value=4, max_value=640)


@given(MODES, SIDE, SIDE, MODEL_SIDE, MODEL_SIDE, st.data())
def test_boxes_round_trip(mode, fw, fh, mw, mh, data):
    _, t = plan_resize(mode, fw, fh, mw, mh)
    x1 = data.draw(st.floats(0, fw - 1))
    y1 = data.draw(st.floats(0, fh - 1))
    x2 = data.draw(st.floats(x1, fw))
    y2 = data.draw(st.floats(y1, fh))
    back = t.to_frame(t.to_model([[x1, y1, x2, y2]]), clip=False)[0]
    assert back == pytest.approx([x1, y1, x2, y2], abs=1e-6 * max(fw, fh))


@given(MODES, SIDE, SIDE, MODEL_SIDE, MODEL_SIDE)
def test_plan_geometry(mode, fw, fh, mw, mh):
    plan, t = plan_resize(mode, fw, fh, mw, mh)
    # the source window lies inside the frame, the destination inside the model input
    assert 0 <= plan.src_x and plan.src_x + plan.src_w <= fw
    assert 0 <= plan.src_y and plan.src_y + plan.src_h <= fh
    assert 0 <= plan.off_x and plan.off_x + plan.dst_w <= mw
    assert 0 <= plan.off_y and plan.off_y + plan.dst_h <= mh
    # and the transform maps one onto the other exactly
    src = [plan.src_x, plan.src_y, plan.src_x + plan.src_w, plan.src_y + plan.src_h]
    dst = [plan.off_x, plan.off_y, plan.off_x + plan.dst_w, plan.off_y + plan.dst_h]
    assert t.to_model([src])[0] == pytest.approx(dst, abs=1e-6 * max(mw, mh, fw, fh))
    if mode == "stretch":
        assert (plan.dst_w, plan.dst_h, plan.src_w, plan.src_h) == (mw, mh, fw, fh)
    elif mode == "letterbox":
        # whole frame visible, one side touches the model's edges, aspect kept within a pixel
        assert (plan.src_w, plan.src_h) == (fw, fh)
        assert plan.dst_w == mw or plan.dst_h == mh
        s = min(mw / fw, mh / fh)
        assert abs(plan.dst_w - max(1.0, fw * s)) <= 0.5 + 1e-9
        assert abs(plan.dst_h - max(1.0, fh * s)) <= 0.5 + 1e-9
    else:
        # crop fills the whole model input, window centred
        assert (plan.dst_w, plan.dst_h) == (mw, mh)
        assert plan.src_w == fw or plan.src_h == fh
        assert abs((fw - plan.src_w) - 2 * plan.src_x) <= 1
        assert abs((fh - plan.src_h) - 2 * plan.src_y) <= 1


@given(MODES, SIDE, SIDE, MODEL_SIDE, MODEL_SIDE)
def test_to_frame_clips_to_the_frame(mode, fw, fh, mw, mh):
    _, t = plan_resize(mode, fw, fh, mw, mh)
    out = t.to_frame([[-50, -50, mw + 50, mh + 50]])[0]
    assert out[0] >= 0 and out[1] >= 0 and out[2] <= fw and out[3] <= fh


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@settings(max_examples=60, deadline=None)
@given(
    MODES,
    st.integers(40, 400),
    st.integers(40, 400),
    st.integers(16, 160),
    st.integers(16, 160),
    st.data(),
)
def test_preprocessor_pixels_map_back(mode, fw, fh, mw, mh, data):
    """A white rectangle drawn in the frame, run through the real preprocessor (OpenCV resize
    into a uint8 input), found in the model input and mapped back, lands where it was drawn."""
    x1 = data.draw(st.integers(0, fw - 20))
    y1 = data.draw(st.integers(0, fh - 20))
    x2 = data.draw(st.integers(x1 + 20, fw))
    y2 = data.draw(st.integers(y1 + 20, fh))
    frame = np.zeros((fh, fw, 3), np.uint8)
    frame[y1:y2, x1:x2] = 255
    spec = TensorSpec(
        "in", 0, (1, mh, mw, 3), np.dtype(np.uint8), Quantization.per_tensor(1 / 255, 0)
    )
    pre = Preprocessor(spec, ModelDescription(resize=mode, normalize="unit"))
    out = np.zeros(spec.shape, np.uint8)
    t = pre.run(frame, out)
    # the rectangle as the model sees it, in model pixels (edges), then in frame pixels
    expected_model = t.to_model([[x1, y1, x2, y2]])[0]
    visible = out[0, :, :, 0] > 127
    seen = np.clip(expected_model, 0, [mw, mh, mw, mh])  # crop cuts off the outside
    # a rectangle under ~3 model pixels blurs below half intensity: nothing to locate
    assume(seen[2] - seen[0] >= 3 and seen[3] - seen[1] >= 3)
    assert visible.any()
    found = t.to_frame([_bbox(visible)])[0]
    want = t.to_frame([seen], clip=False)[0]
    # one model pixel of tolerance (sampling), expressed in frame pixels
    tol = np.array([1 / t.sx, 1 / t.sy, 1 / t.sx, 1 / t.sy]) * 1.01 + 1e-6
    assert np.all(np.abs(found - want) <= tol), (found, want, tol)
