"""Issue 13 (pure parts and crafted models): TFLite metadata, label files, input rules,
strict decoders, anchor layouts, per-decoder defaults. The real published models are in
tests/integration/test_real_models.py."""

from __future__ import annotations

import io
import json
import logging
import shutil
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from edge_agent.errors import DecoderError, DescriptionError
from edge_agent.inference import Runner
from edge_agent.inference.anchors import LAYOUTS, match_layout
from edge_agent.inference.decoders import get_decoder
from edge_agent.inference.description import (
    DEFAULT,
    GUESSED,
    METADATA,
    DecoderSpec,
    ModelDescription,
    infer_description,
    input_rule,
    load_description,
    parse_description,
)
from edge_agent.inference.flatbuf import FlatbufferError, Table
from edge_agent.inference.labels import align_labels, parse_labels, read_labels
from edge_agent.inference.metadata import (
    MetadataError,
    TensorInfo,
    parse_metadata,
    read_metadata,
)
from edge_agent.inference.preprocess import build_lut
from edge_agent.inference.result import MAX_RAW_VALUES, Result
from edge_agent.inference.tensors import Quantization, TensorSpec
from edge_agent.inference.transform import plan_exact, plan_resize

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits_int8.tflite"
COCO = "0  person\n1  bicycle\n2  car\n15  bird\n16  cat\n17  dog\n46  banana\n47  cup\n"


def spec(name: str, shape: tuple[int, ...], dtype=np.float32, q=None) -> TensorSpec:
    return TensorSpec(name, 0, shape, np.dtype(dtype), q or Quantization())


class Tensors:
    def __init__(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.inputs, self.outputs = inputs, outputs


# -- label files ------------------------------------------------------------------------------


def test_label_files_in_the_formats_people_have(tmp_path: Path) -> None:
    coco = parse_labels(COCO)
    assert len(coco) == 48 and coco[16] == "cat" and coco[47] == "cup" and coco[3] == ""
    # the same file read one per line would name id 16 "bird"... ids are kept instead
    assert parse_labels("1: cat\n3: dog\n") == ["", "cat", "", "dog"]
    assert parse_labels("background\ncat\n\ndog\n\n") == ["background", "cat", "", "dog"]
    assert parse_labels("0\n1\n2\n") == ["0", "1", "2"]  # digits: names, not ids
    assert parse_labels("\ufeff0 person\n1 bicycle") == ["person", "bicycle"]
    with pytest.raises(DescriptionError, match="line 2: class id 0 appears twice"):
        parse_labels("0 a\n0 b\n")
    with pytest.raises(DescriptionError, match="class id 1000000"):
        parse_labels("1000000 huge\n")
    p = tmp_path / "coco.txt"
    p.write_text(COCO)
    assert read_labels(p)[17] == "dog"
    with pytest.raises(DescriptionError, match="labels file not found"):
        read_labels(tmp_path / "none.txt")


def test_background_row_dropped_only_when_the_model_has_no_class_for_it() -> None:
    with_bg = ["background", "cat", "dog"]
    assert align_labels(with_bg, 3) == with_bg  # DeepLab-style: background is class 0
    assert align_labels(with_bg, 2) == ["cat", "dog"]  # one class fewer than labels
    assert align_labels(["???", "person", "bicycle"], None) == ["person", "bicycle"]  # SSD
    assert align_labels(["person", "bicycle"], None) == ["person", "bicycle"]


# -- metadata: a crafted ModelMetadata flatbuffer ---------------------------------------------


def _metadata_bytes() -> bytes:
    b = flatbuffers.Builder(1024)

    def string(s: str) -> int:
        return b.CreateString(s)

    def vector_of(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    labels_name = string("labels.txt")
    b.StartObject(5)  # AssociatedFile
    b.PrependUOffsetTRelativeSlot(0, labels_name, 0)
    b.PrependInt8Slot(2, 2, 0)  # TENSOR_AXIS_LABELS
    assoc = b.EndObject()
    mean, std = floats([127.0]), floats([128.0])
    b.StartObject(2)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(0, mean, 0)
    b.PrependUOffsetTRelativeSlot(1, std, 0)
    norm = b.EndObject()
    b.StartObject(2)  # ProcessUnit {options_type, options}
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, norm, 0)
    unit = b.EndObject()
    b.StartObject(2)  # ImageProperties
    b.PrependInt8Slot(0, 1, 0)  # RGB
    image = b.EndObject()
    b.StartObject(3)  # Content {content_properties_type, content_properties, range}
    b.PrependUint8Slot(0, 2, 0)  # ImageProperties
    b.PrependUOffsetTRelativeSlot(1, image, 0)
    content = b.EndObject()
    in_name, units = string("image"), vector_of([unit])
    b.StartObject(7)  # TensorMetadata (input)
    b.PrependUOffsetTRelativeSlot(0, in_name, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    tin = b.EndObject()
    out_name, files = string("probability"), vector_of([assoc])
    b.StartObject(7)  # TensorMetadata (output)
    b.PrependUOffsetTRelativeSlot(0, out_name, 0)
    b.PrependUOffsetTRelativeSlot(6, files, 0)
    tout = b.EndObject()
    ins, outs = vector_of([tin]), vector_of([tout])
    b.StartObject(10)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(2, ins, 0)
    b.PrependUOffsetTRelativeSlot(3, outs, 0)
    sub = b.EndObject()
    name, author, lic, subs = string("Digits"), string("edge-agent tests"), string("Apache-2.0"), (
        vector_of([sub])
    )
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(3, subs, 0)
    b.PrependUOffsetTRelativeSlot(4, author, 0)
    b.PrependUOffsetTRelativeSlot(5, lic, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def _model_with_metadata(tmp_path: Path, meta: bytes, labels: str | None) -> Path:
    """digits_int8.tflite with a TFLITE_METADATA buffer (and a zip of label files appended)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(DIGITS))
    buf = schema.BufferT()
    buf.data = np.frombuffer(meta, np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    out = tmp_path / "digits_meta.tflite"
    flatbuffer_utils.write_model(model, str(out))
    if labels is not None:
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr("labels.txt", labels)
        out.write_bytes(out.read_bytes() + zipped.getvalue())
    return out


def test_metadata_fields_and_associated_labels(tmp_path: Path) -> None:
    labels = "".join(f"digit {i}\n" for i in range(10))
    path = _model_with_metadata(tmp_path, _metadata_bytes(), labels)
    meta = read_metadata(path)
    assert meta is not None
    assert (meta.name, meta.author, meta.license) == ("Digits", "edge-agent tests", "Apache-2.0")
    (tin,) = meta.inputs
    assert (tin.name, tin.content, tin.color_space, tin.mean, tin.std) == (
        "image", "image", "rgb", (127.0,), (128.0,)
    )
    assert meta.outputs[0].label_file().name == "labels.txt"
    assert meta.archive == ("labels.txt",) and meta.texts["labels.txt"] == labels
    # the model still runs, and with no description its metadata names the classes
    runner = Runner.open(path)
    assert runner.description.origin.sources["labels"] == METADATA
    # int8 input with metadata mean/std: (p - 127) / 128, then quantised (digits: 1/255, -128)
    assert runner.description.normalize == "meanstd"
    assert runner.description.origin.sources["normalize"] == METADATA
    gray = np.zeros((8, 8), np.uint8)
    result, _ = runner.run(gray)
    assert result.classes[0].label.startswith("digit ")
    assert read_metadata(DIGITS) is None  # a model without metadata


def test_damaged_metadata_is_one_warning_and_the_model_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _metadata_bytes()
    damaged = good[:8] + b"\xff\xff\xff\x7f" + good[12:]  # a table offset far outside
    path = _model_with_metadata(tmp_path, damaged, None)
    with pytest.raises(MetadataError, match="model metadata is damaged"):
        read_metadata(path)
    caplog.set_level(logging.WARNING, "edge_agent.inference")
    desc = load_description(path)
    assert desc.decoder.name == "classification"
    assert "damaged" in desc.origin.metadata_error
    warnings = [r for r in caplog.records if "metadata" in r.getMessage()]
    assert len(warnings) == 1 and "going on without it" in warnings[0].getMessage()


def test_flatbuffer_reader_refuses_what_is_outside_the_buffer() -> None:
    with pytest.raises(FlatbufferError, match="outside"):
        Table.root(b"\x00\x00")
    with pytest.raises(FlatbufferError, match="identifier"):
        parse_metadata(b"\x08\x00\x00\x00TFL3" + b"\x00" * 16)
    meta = _metadata_bytes()
    with pytest.raises(FlatbufferError):
        parse_metadata(meta[: len(meta) // 3])


# -- input conventions ------------------------------------------------------------------------


def test_input_rules() -> None:
    u8 = spec("in", (1, 4, 4, 3), np.uint8, Quantization.per_tensor(0.0125, 131))
    i8 = spec("in", (1, 4, 4, 3), np.int8, Quantization.per_tensor(1 / 255, -128))
    f32 = spec("in", (1, 4, 4, 3))
    norm = TensorInfo(mean=(127.5,), std=(127.5,))
    values, source, rule = input_rule(u8, norm, "symmetric")
    assert values == {"normalize": "codes"} and source == GUESSED and "not applied" in rule
    assert input_rule(i8, None, "symmetric")[0] == {"normalize": "codes"}
    assert input_rule(i8, norm, "symmetric")[:2] == ({"normalize": "symmetric"}, METADATA)
    values, source, _ = input_rule(f32, TensorInfo(mean=(127.0,), std=(128.0,)), "symmetric")
    assert values == {"normalize": "meanstd", "mean": [127.0], "std": [128.0]}
    assert input_rule(f32, None, "symmetric")[:2] == ({"normalize": "symmetric"}, DEFAULT)
    codes = ModelDescription(normalize="codes")
    assert np.array_equal(build_lut(u8, codes, 3)[:, 0], np.arange(256))
    assert np.array_equal(build_lut(i8, codes, 1)[:, 0], np.arange(256) - 128)
    assert np.array_equal(build_lut(f32, codes, 1)[:, 0], np.arange(256, dtype=np.float32))


def test_corner_sampling_transform_is_exact() -> None:
    t = plan_exact("letterbox", 451, 300, 128, 128)
    assert t.sx == t.sy == pytest.approx(128 / 451)
    assert (t.ox, t.oy) == (0.0, pytest.approx((128 - 300 * 128 / 451) / 2))
    _plan, rounded = plan_resize("letterbox", 451, 300, 128, 128)
    assert rounded.oy != t.oy  # centre sampling rounds the padding to whole pixels
    frame = np.full((300, 451, 3), 200, np.uint8)
    model = Tensors(
        [spec("in", (1, 128, 128, 3))], [spec("o", (1, 896, 16)), spec("c", (1, 896, 1))]
    )
    desc = infer_description(model.inputs, model.outputs, [])
    assert desc.sampling == "corner" and desc.origin.sources["sampling"] == GUESSED
    from edge_agent.inference.preprocess import Preprocessor

    out = np.zeros((1, 128, 128, 3), np.float32)
    Preprocessor(model.inputs[0], desc).run(frame, out)
    assert out[0, 64, 64, 0] == pytest.approx(200 / 127.5 - 1)
    assert out[0, 0, 64, 0] == pytest.approx(-1.0)  # zero padding above the picture


# -- decoders ---------------------------------------------------------------------------------


def test_one_default_per_decoder() -> None:
    cls = DecoderSpec(name="classification")
    assert (cls.threshold, cls.top_k) == (0.0, 5)
    assert DecoderSpec(name="ssd").threshold == 0.5
    assert DecoderSpec(name="blazeface").iou_threshold == 0.3
    assert DecoderSpec(name="segmentation").threshold == 0.0
    # a description without a threshold gets the same as the guessed one
    parsed = parse_description({"decoder": {"name": "classification"}})
    guessed = infer_description([spec("in", (1, 8, 8, 3))], [spec("o", (1, 10))], [])
    assert parsed.decoder.threshold == guessed.decoder.threshold == 0.0
    assert parsed.origin.sources["threshold"] == DEFAULT
    # switching decoder by override takes the new decoder's default, not the old one's
    switched = guessed.with_overrides(decoder="ssd")
    assert switched.decoder.threshold == 0.5 and switched.decoder.top_k == 100


def test_classification_refuses_a_segmentation_map() -> None:
    seg = Tensors([spec("in", (1, 257, 257, 3))], [spec("out", (1, 257, 257, 21))])
    desc = ModelDescription(decoder=DecoderSpec(name="classification"))
    with pytest.raises(DecoderError, match=r"segmentation map.*--decoder segmentation"):
        get_decoder(desc, seg)
    guessed = infer_description(seg.inputs, seg.outputs, [])
    assert guessed.decoder.name == "segmentation"


def _transform(mode: str, fw: int, fh: int, mw: int, mh: int):
    return plan_resize(mode, fw, fh, mw, mh)[1]


def test_segmentation_fractions_of_the_frame_only() -> None:
    labels = ["background", "cat", "dog"]
    model = Tensors([spec("in", (1, 64, 64, 3))], [spec("out", (1, 64, 64, 3))])
    dec = get_decoder(
        ModelDescription(decoder=DecoderSpec(name="segmentation", labels=labels)), model
    )
    logits = np.zeros((1, 64, 64, 3), np.float32)
    logits[0, :, :, 0] = 1.0
    logits[0, 16:48, :32, 1] = 5.0  # the frame's left half: cat
    logits[0, 16:48, 32:, 2] = 5.0  # right half: dog; the padding rows stay background
    t = _transform("letterbox", 200, 100, 64, 64)  # frame is rows 16..48 of the input
    res = dec.decode([logits], t)
    fractions = {s.label: round(s.fraction, 3) for s in res.segments}
    assert fractions == {"cat": 0.5, "dog": 0.5}
    assert res.mask is not None and res.mask.box == (0, 16, 64, 48)
    doc = res.to_json()
    assert doc["mask_shape"] == [64, 64] and len(json.dumps(doc)) < 400
    from edge_agent.inference.annotate import annotate

    frame = np.zeros((100, 200, 3), np.uint8)
    drawn = annotate(frame, res)
    assert drawn[50, 50].any() and drawn[50, 150].any()  # both halves tinted
    assert not np.array_equal(drawn[50, 50], drawn[50, 150])  # in different colours


def test_segmentation_one_channel_probability_and_class_ids() -> None:
    model = Tensors([spec("in", (1, 32, 32, 3))], [spec("out", (1, 32, 32, 1))])
    dec = get_decoder(
        ModelDescription(decoder=DecoderSpec(name="segmentation", labels=["selfie"])), model
    )
    prob = np.zeros((1, 32, 32, 1), np.float32)
    prob[0, :8] = 0.9
    res = dec.decode([prob], _transform("stretch", 64, 64, 32, 32))
    assert {s.label: s.fraction for s in res.segments} == {"background": 0.75, "selfie": 0.25}
    ids_model = Tensors([spec("in", (1, 16, 16, 3))], [spec("out", (1, 16, 16), np.int32)])
    dec = get_decoder(ModelDescription(decoder=DecoderSpec(name="segmentation")), ids_model)
    ids = np.zeros((1, 16, 16), np.int32)
    ids[0, :, :4] = 7
    res = dec.decode([ids], _transform("stretch", 16, 16, 16, 16))
    assert [(s.label, s.fraction) for s in res.segments] == [("0", 0.75), ("7", 0.25)]


def test_raw_json_stays_bounded() -> None:
    big = np.random.default_rng(1).standard_normal((1, 257, 257, 21)).astype(np.float32)
    doc = Result(kind="raw", raw=[big], raw_names=["logits"]).to_json()
    out = doc["outputs"][0]
    assert out["truncated"] and len(out["values"]) == MAX_RAW_VALUES
    assert out["min"] == pytest.approx(float(big.min())) and out["shape"] == [1, 257, 257, 21]
    assert len(json.dumps(doc)) < 30_000  # was 25 MB for one frame
    small = Result(kind="raw", raw=[np.arange(4.0)]).to_json()["outputs"][0]
    assert small["values"] == [0.0, 1.0, 2.0, 3.0] and "truncated" not in small


@pytest.mark.parametrize(
    ("size", "count", "label"),
    [(128, 896, "face"), (192, 2304, "face"), (256, 896, "face"), (224, 2254, "person"),
     (192, 2016, "palm")],
)
def test_anchor_layout_from_the_model(size: int, count: int, label: str) -> None:
    layout = match_layout(size, size, count)
    assert layout is not None and layout.label == label
    model = Tensors(
        [spec("in", (1, size, size, 3))], [spec("r", (1, count, 16)), spec("c", (1, count, 1))]
    )
    desc = infer_description(model.inputs, model.outputs, [])
    assert desc.decoder.name == "blazeface" and desc.origin.family == layout.family
    dec = get_decoder(desc, model)
    assert dec.anchors.shape == (count, 2) and dec.labels == [label]


def test_unknown_anchor_layout_says_what_was_tried() -> None:
    model = Tensors(
        [spec("in", (1, 160, 160, 3))], [spec("r", (1, 999, 16)), spec("c", (1, 999, 1))]
    )
    desc = ModelDescription(decoder=DecoderSpec(name="blazeface"))
    with pytest.raises(DecoderError, match=r"no published anchor layout gives 999 boxes.*strides"):
        get_decoder(desc, model)
    assert len(LAYOUTS) == 5


# -- labels on the command line and in the description ---------------------------------------


def test_labels_path_in_the_description_and_beside_the_model(tmp_path: Path) -> None:
    model = tmp_path / "digits.tflite"
    shutil.copy(DIGITS, model)
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "d.txt").write_text("".join(f"{i}: d{i}\n" for i in range(10)))
    (tmp_path / "digits.json").write_text(json.dumps(
        {"color": "gray", "normalize": "unit",
         "decoder": {"name": "classification", "labels": "names/d.txt"}}
    ))
    desc = load_description(model)
    assert desc.decoder.labels[3] == "d3" and desc.origin.sources["labels"] == "description file"
    (tmp_path / "digits.json").unlink()
    (tmp_path / "labels.txt").write_text("zero\none\ntwo\n")
    desc = load_description(model)
    assert desc.decoder.labels[:2] == ["zero", "one"]
    assert desc.origin.sources["labels"] == "labels file beside the model"
    (tmp_path / "labelmap.txt").write_text("x\n")  # two candidates: neither is taken
    assert load_description(model).decoder.labels == []

