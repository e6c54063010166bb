"""Decoders on hand-built output arrays (pure logic), NMS, the description and its defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.errors import DecoderError, DescriptionError
from edge_agent.inference import (
    DecoderSpec,
    ModelDescription,
    Quantization,
    Result,
    TensorSpec,
    get_decoder,
    infer_description,
    load_description,
    register_decoder,
)
from edge_agent.inference.decoders import Decoder
from edge_agent.inference.decoders.blazeface import ssd_anchors
from edge_agent.inference.description import (
    parse_description,
)
from edge_agent.inference.nms import iou, nms, weighted_nms
from edge_agent.inference.transform import plan_resize


class Tensors:
    def __init__(self, inputs, outputs):
        self.inputs = inputs
        self.outputs = outputs


def spec(name, shape, dtype=np.float32, q=None, index=0):
    return TensorSpec(name, index, tuple(shape), np.dtype(dtype), q or Quantization())


IMG = spec("image", (1, 320, 320, 3))
IDENTITY = plan_resize("stretch", 320, 320, 320, 320)[1]


def decoder(name, outputs, inputs=(IMG,), **kw):
    desc = ModelDescription(decoder=DecoderSpec(name=name, **kw))
    return get_decoder(desc, Tensors(list(inputs), outputs))


def test_nms_keeps_best_and_drops_overlaps():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]
    assert nms(boxes, [0.9, 0.8, 0.7], 0.5, 10).tolist() == [0, 2]
    assert nms(boxes, [0.9, 0.8, 0.7], 0.5, 1).tolist() == [0]
    merged, scores, _ = weighted_nms(boxes, [0.5, 0.5, 0.7], 0.5, 10)
    assert scores.tolist() == [0.7, 0.5]
    assert merged[1].tolist() == pytest.approx([0.5, 0.5, 10.5, 10.5])
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)


def test_classification_top_k_labels_and_dequantisation():
    out = spec("probs", (1, 4), np.uint8, Quantization.per_tensor(1 / 256, 0))
    d = decoder("classification", [out], top_k=2, threshold=0.0, labels=["a", "b", "c", "d"])
    r = d.decode([np.array([[10, 200, 40, 6]], np.uint8)], IDENTITY)
    assert [(c.label, round(c.score, 4)) for c in r.classes] == [("b", 0.7812), ("c", 0.1562)]
    assert r.to_json() == {
        "classes": [{"label": "b", "score": 0.7812}, {"label": "c", "score": 0.1562}]
    }


def test_classification_softmax_on_logits_and_threshold():
    d = decoder("classification", [spec("logits", (1, 3))], threshold=0.5)
    r = d.decode([np.array([[2.0, -1.0, 0.0]], np.float32)], IDENTITY)
    assert [c.class_id for c in r.classes] == [0] and r.classes[0].score == pytest.approx(
        0.8438, 1e-3
    )


def ssd_outputs():
    return [
        spec("TFLite_Detection_PostProcess", (1, 3, 4), index=1),
        spec("TFLite_Detection_PostProcess:1", (1, 3), index=2),
        spec("TFLite_Detection_PostProcess:2", (1, 3), index=3),
        spec("TFLite_Detection_PostProcess:3", (1,), index=4),
    ]


def test_ssd_maps_boxes_to_frame_pixels():
    d = decoder("ssd", ssd_outputs(), threshold=0.5, labels=["person", "dog"])
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1], [0, 0, 0.1, 0.1]]], np.float32)
    classes = np.array([[1, 0, 0]], np.float32)
    scores = np.array([[0.9, 0.4, 0.8]], np.float32)
    _, t = plan_resize("stretch", 640, 480, 320, 320)
    r = d.decode([boxes, classes, scores, np.array([2], np.float32)], t)
    assert len(r.detections) == 1  # the third is beyond count, the second below threshold
    det = r.detections[0]
    assert det.label == "dog" and det.box == pytest.approx((128, 48, 384, 240))


def test_yolo_v5_and_v8_layouts_agree():
    # two boxes of class 1 overlapping, one of class 0 elsewhere; pixels of a 320 input
    rows = np.array(
        [
            [100, 100, 40, 40, 0.9, 0.1, 0.9],
            [102, 101, 40, 40, 0.8, 0.1, 0.9],
            [250, 250, 20, 20, 0.9, 0.8, 0.1],
        ],
        np.float32,
    )
    v5 = decoder("yolo", [spec("out", (1, 3, 7))], threshold=0.3, iou_threshold=0.5)
    r5 = v5.decode([rows[None]], IDENTITY)
    v8_rows = np.concatenate([rows[:, :4], rows[:, 5:] * rows[:, 4:5]], axis=1)
    # v8 is [1, 4+C, N]; pad N so the layout is unambiguous (more anchors than channels)
    pad = np.zeros((10, 6), np.float32)
    v8_in = np.concatenate([v8_rows, pad])[None].transpose(0, 2, 1)
    v8 = decoder("yolo", [spec("out", v8_in.shape)], threshold=0.3, iou_threshold=0.5)
    r8 = v8.decode([v8_in], IDENTITY)
    for r in (r5, r8):
        assert [d.class_id for d in r.detections] == [1, 0]
        assert r.detections[0].box == pytest.approx((80, 80, 120, 120))


def test_yolo_normalized_coordinates():
    rows = np.array([[[0.5, 0.5, 0.25, 0.25, 1.0, 1.0]]], np.float32)
    d = decoder("yolo", [spec("out", (1, 1, 6))], threshold=0.5)
    assert d.decode([rows], IDENTITY).detections[0].box == pytest.approx((120, 120, 200, 200))


def test_blazeface_anchors_and_decode():
    a = ssd_anchors(128, 128)
    assert a.shape == (896, 2)
    assert a[0].tolist() == [0.5 / 16, 0.5 / 16] and a[1].tolist() == a[0].tolist()
    assert a[512].tolist() == [0.5 / 8, 0.5 / 8] and a[517].tolist() == a[512].tolist()
    inp = spec("input", (1, 128, 128, 3))
    outs = [spec("regressors", (1, 896, 16)), spec("classificators", (1, 896, 1))]
    d = decoder("blazeface", outs, inputs=(inp,), threshold=0.5, labels=["face"])
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    # anchor 584 = 512 + 6 * (1 * 8 + 4): grid (x=4, y=1) of the 8x8 layer, centre (4.5/8, 1.5/8)
    reg[0, 584, :4] = [8.0, -4.0, 32.0, 16.0]  # shift by (8, -4) px, size 32x16 px
    logits[0, 584, 0] = 3.0
    _, t = plan_resize("letterbox", 256, 512, 128, 128)  # frame 256x512: scale 0.25, pad x 32
    r = d.decode([reg, logits], t)
    assert len(r.detections) == 1
    cx, cy = 4.5 / 8 * 128 + 8, 1.5 / 8 * 128 - 4
    model_box = [cx - 16, cy - 8, cx + 16, cy + 8]
    assert r.detections[0].box == pytest.approx(tuple(t.to_frame([model_box])[0]))
    assert r.detections[0].score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert r.detections[0].label == "face"


def test_decoder_mismatch_and_unknown_names():
    with pytest.raises(DecoderError, match="expects 2 outputs"):
        decoder("blazeface", [spec("x", (1, 10))])
    with pytest.raises(DecoderError, match=r"unknown decoder 'nope'.*blazeface"):
        decoder("nope", [spec("x", (1, 10))])


def test_users_can_register_a_decoder():
    @register_decoder("test_count")
    class CountDecoder(Decoder):
        def decode(self, outputs, transform):
            return Result(kind="raw", raw=[np.array([len(outputs)])])

    r = decoder("test_count", [spec("x", (1, 2))]).decode([np.zeros((1, 2))], IDENTITY)
    assert r.raw[0].tolist() == [1]


def test_description_file_and_errors(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    good = {
        "schema": 1,
        "color": "bgr",
        "resize": "crop",
        "normalize": "meanstd",
        "mean": [1, 2, 3],
        "std": [4, 5, 6],
        "decoder": {"name": "classification", "top_k": 3, "labels": ["x"], "options": {}},
    }
    (tmp_path / "m.json").write_text(json.dumps(good))
    d = load_description(model)
    assert (d.color, d.resize, d.decoder.top_k) == ("bgr", "crop", 3)
    assert d.to_json()["schema"] == 1
    assert d.with_overrides(decoder="raw", threshold=0.25).decoder.model_dump()["name"] == "raw"
    bad = dict(good, resize="zoom")
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(DescriptionError, match=r"m.json: invalid model description: resize"):
        load_description(model)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(DescriptionError, match="not valid JSON"):
        load_description(model)
    with pytest.raises(DescriptionError, match="meanstd"):
        parse_description({"normalize": "meanstd", "decoder": {"name": "raw"}})
    with pytest.raises(DescriptionError, match="typo: unknown key"):
        parse_description({"typo": 1})
    # overrides on top of the file given by path (config / CLI), labels from a labels file
    (tmp_path / "other.json").write_text(json.dumps(good))
    (tmp_path / "labels.txt").write_text("cat\ndog\n\n")
    d = load_description(
        model,
        {"threshold": 0.7, "labels": tmp_path / "labels.txt", "decoder": None},
        path=tmp_path / "other.json",
    )
    assert (d.decoder.threshold, d.decoder.labels, d.decoder.name) == (
        0.7,
        ["cat", "dog"],
        "classification",
    )
    with pytest.raises(DescriptionError, match="unknown description override"):
        load_description(model, {"colour": "rgb"}, path=tmp_path / "other.json")
    with pytest.raises(DescriptionError, match="labels file not found"):
        load_description(model, {"labels": tmp_path / "nope.txt"}, path=tmp_path / "other.json")


def test_defaults_guessed_from_tensors():
    bf = infer_description(
        [spec("input", (1, 128, 128, 3))], [spec("r", (1, 896, 16)), spec("c", (1, 896, 1))], []
    )
    assert (bf.decoder.name, bf.resize, bf.normalize) == ("blazeface", "letterbox", "symmetric")
    cls = infer_description(
        [spec("in", (1, 224, 224, 3), np.uint8, Quantization.per_tensor(1 / 127.5, 127))],
        [spec("out", (1, 1000), np.uint8)],
        [],
    )
    # uint8: the pixel codes as they are, whatever the scale says (TFLite convention)
    assert (cls.decoder.name, cls.normalize) == ("classification", "codes")
    assert (cls.decoder.threshold, cls.decoder.top_k) == (0.0, 5)
    gray = infer_description(
        [spec("in", (1, 8, 8, 1), np.int8, Quantization.per_tensor(1 / 255, -128))],
        [spec("out", (1, 10), np.int8)],
        [],
    )
    assert (gray.color, gray.normalize) == ("gray", "codes")  # int8: pixel - 128
    assert (
        infer_description([IMG], ssd_outputs(), ["TFLite_Detection_PostProcess"]).decoder.name
        == "ssd"
    )
    assert infer_description([IMG], [spec("o", (1, 84, 2100))], []).decoder.name == "yolo"
    assert infer_description([IMG], [spec("o", (1, 7, 7, 3, 2))], []).decoder.name == "raw"
