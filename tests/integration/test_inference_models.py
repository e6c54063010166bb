"""Real models on real photos through the real runtime: BlazeFace float/int8, digits, Model API."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.errors import BackendError, ModelIOError
from edge_agent.inference import Model, Runner, read_image, select_backend
from edge_agent.inference.nms import iou
from tests.support.inference import astronaut_face, blazeface_float, model_path, photo


@pytest.fixture(scope="module")
def photos():
    return {n: read_image(photo(n)) for n in ("astronaut", "coffee", "chelsea")}


@pytest.fixture(scope="module")
def float_runner():
    return Runner.open(blazeface_float())


@pytest.fixture(scope="module")
def int8_runner():
    return Runner.open(model_path("blazeface_int8.tflite"))


def _faces(runner, img):
    result, _ = runner.run(img)
    return [d for d in result.detections if d.label == "face"]


def test_float_blazeface_finds_the_astronaut(float_runner, photos):
    faces = _faces(float_runner, photos["astronaut"])
    assert len(faces) == 1
    assert iou(faces[0].box, astronaut_face()) >= 0.5
    assert faces[0].score >= float_runner.description.decoder.threshold


def test_int8_blazeface_finds_the_astronaut_like_float(float_runner, int8_runner, photos):
    assert int8_runner.model.inputs[0].dtype.kind in "iu", "blazeface_int8 must take integer input"
    faces = _faces(int8_runner, photos["astronaut"])
    assert len(faces) == 1
    assert iou(faces[0].box, astronaut_face()) >= 0.5
    reference = _faces(float_runner, photos["astronaut"])[0]
    assert iou(faces[0].box, reference.box) >= 0.8


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
@pytest.mark.parametrize("kind", ["float_runner", "int8_runner"])
def test_no_face_in_photos_without_one(request, photos, kind, name):
    runner = request.getfixturevalue(kind)
    assert _faces(runner, photos[name]) == []


def _accuracy(runner, images, labels):
    hits = 0
    for img, lab in zip(images, labels, strict=True):
        hits += int(runner.run(img)[0].classes[0].class_id == int(lab))
    return 100.0 * hits / len(labels)


def test_digits_int8_within_one_point_of_float():
    from tests.support.helpers import DATA

    npz = DATA / "digits_test.npz"
    data = np.load(npz)
    images, labels = data["images"], data["labels"]
    acc_float = _accuracy(Runner.open(model_path("digits_float32.tflite")), images, labels)
    acc_int8 = _accuracy(Runner.open(model_path("digits_int8.tflite")), images, labels)
    assert acc_float >= 90.0
    assert abs(acc_float - acc_int8) <= 1.0, (acc_float, acc_int8)


def test_backend_selection_and_forcing(photos):
    auto = select_backend()
    assert auto.name in ("litert", "tflite_runtime", "tensorflow") and auto.version
    assert select_backend(auto.name) is auto
    with pytest.raises(BackendError, match="unknown inference backend 'onnx'"):
        select_backend("onnx")
    for name in ("tflite_runtime", "tensorflow", "litert"):
        try:
            b = select_backend(name)
        except BackendError as exc:
            assert name in str(exc) and "pip install" in str(exc)
            continue
        assert b.name == name
        # whichever runtimes are installed give the same answer on the same model
        runner = Runner.open(blazeface_float(), backend=name)
        assert runner.model.backend is b
        result, _ = runner.run(photos["astronaut"])
        assert iou(result.detections[0].box, astronaut_face()) >= 0.5


def test_model_specs_zero_copy_threads_and_clone(photos):
    path = blazeface_float()
    m = Model(path, threads=2)
    assert m.threads == 2 and m.delegate == "cpu" and m.delegate_errors == []
    assert len(m.sha256) == 64 and m.size == path.stat().st_size
    assert m.inputs[0].shape == (1, 128, 128, 3) and m.inputs[0].dtype == np.float32
    assert sorted(t.shape[-1] for t in m.outputs) == [1, 16]
    assert "CONV_2D" in m.operators()
    view = m.input_view()
    view.fill(0.25)
    del view
    got = m.interpreter.get_tensor(m.inputs[0].index)
    assert np.all(got == 0.25)  # the view was the interpreter's own memory
    held = m.input_view()
    with pytest.raises(RuntimeError):
        m.invoke()  # the runtime refuses while a view is alive
    del held
    m.invoke()
    clone = m.clone()
    assert clone.interpreter is not m.interpreter
    a = Runner(m, Runner.open(path, warmup=0).description)
    b = Runner(clone, a.description)
    ra, _ = a.run(photos["astronaut"])
    rb, _ = b.run(photos["astronaut"])
    assert ra.to_json() == rb.to_json()


def test_runner_refuses_a_two_input_model(tmp_path):
    from tests.support.inference import two_input_model

    two = two_input_model(blazeface_float(), tmp_path / "two.tflite")
    with pytest.raises(ModelIOError, match="2 inputs"):
        Runner.open(two)


def test_an_op_version_the_runtime_lacks_is_named(tmp_path):
    from edge_agent.errors import UnsupportedOpError
    from tests.support.inference import op_version_model

    src = model_path("blazeface_int8.tflite")
    bad = op_version_model(src, tmp_path / "newer.tflite", 99)
    with pytest.raises(UnsupportedOpError, match=r"operator [A-Z0-9_]+ \(version 99\) is not"):
        Model(bad)
