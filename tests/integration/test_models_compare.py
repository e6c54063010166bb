"""`edge-agent models compare` on the real shipped models: costs, agreement, ground truth
(folder per class, COCO JSON through pycocotools), refusals, and the HTML report in a real
headless chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.errors import ExitCode
from tests.support.helpers import run_cli
from tests.support.inference import astronaut_face, digits_folders, model_path, photo


def compare(*args: str, timeout: float = 300):
    r = run_cli("models", "compare", *args, "--json", timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_blazeface_float_vs_int8_on_the_demo_clip():
    doc = compare(str(model_path("blazeface_float32.tflite")),
                  str(model_path("blazeface_int8.tflite")), "--data", "demo",
                  "--frames", "24", "--runs", "40")
    g = doc["agreement"]
    assert g["kind"] == "detection" and g["frames"] == 24
    assert g["detections_a"] >= 24  # the face in every frame
    assert g["recall"] >= 0.95 and g["precision"] >= 0.95
    assert g["mean_iou"] > 0.8
    a, b = doc["a"], doc["b"]
    assert (a["size"], b["size"]) == (229032, 182976)
    assert doc["ratios"]["size"] == pytest.approx(229032 / 182976, abs=1e-3)
    for side in (a, b):
        assert side["invoke_p50_ms"] > 0 and side["invoke_p95_ms"] >= side["invoke_p50_ms"]
        assert side["load_ms"] > 0 and side["model_rss_kb"] > 0
    assert doc["ratios"]["speed_p50"] == pytest.approx(
        a["invoke_p50_ms"] / b["invoke_p50_ms"], rel=1e-2)
    assert [t["name"] for t in doc["tensors"]] == ["regressors", "classificators"]
    assert doc["tensors"][0]["cosine_mean"] > 0.95
    assert re.fullmatch(r"blazeface_int8: recall \d\.\d\d / precision \d\.\d\d of A's detections, "
                        r"\d+\.\dx (faster|slower), 1\.3x smaller", doc["summary"]), doc["summary"]
    assert doc["accuracy"] is None
    assert len(doc["disagreeing_frames"]) == 6


def test_digits_against_a_folder_per_class(tmp_path):
    truth = digits_folders(tmp_path / "truth")
    doc = compare(str(model_path("digits_float32.tflite")), str(model_path("digits_int8.tflite")),
                  "--truth", str(truth), "--runs", "20")
    acc = doc["accuracy"]
    assert acc["metric"] == "top-1"
    assert acc["a"]["images"] == acc["b"]["images"] == 450 == doc["frames"]
    assert acc["a"]["top1"] == pytest.approx(98.222, abs=1e-3)  # models/README.md: 442/450
    assert abs(acc["delta_points"]) <= 1.0
    assert acc["a"]["top5"] >= acc["a"]["top1"]
    assert doc["agreement"]["top1_agreement"] >= 0.98
    assert doc["summary"].startswith(f"digits_int8: {acc['delta_points']:+.1f} points top-1, ")
    # it can fail: labels shuffled between the folders -> accuracy collapses
    wrong = tmp_path / "wrong"
    for label in range(10):
        shutil.copytree(truth / str(label), wrong / str((label + 1) % 10))
    doc = compare(str(model_path("digits_float32.tflite")), str(model_path("digits_int8.tflite")),
                  "--truth", str(wrong), "--runs", "5", "--frames", "60")
    assert doc["accuracy"]["a"]["top1"] < 10 and doc["frames"] == 60


def coco(tmp_path: Path, box: list[float]) -> Path:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    entries = []
    for n, name in enumerate(("astronaut", "coffee", "chelsea"), start=1):
        shutil.copy(photo(name), images / f"{name}.jpg")
        h, w = cv2.imread(str(images / f"{name}.jpg")).shape[:2]
        entries.append({"id": n, "file_name": f"{name}.jpg", "width": w, "height": h})
    x1, y1, x2, y2 = box
    doc = {"images": entries, "categories": [{"id": 1, "name": "face"}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1]}]}
    path = tmp_path / "faces.json"
    path.write_text(json.dumps(doc))
    return path


def test_blazeface_against_coco_truth(tmp_path):
    truth = coco(tmp_path, list(astronaut_face()))
    args = (str(model_path("blazeface_float32.tflite")), str(model_path("blazeface_int8.tflite")),
            "--truth", str(truth), "--data", str(tmp_path / "images"), "--runs", "10")
    acc = compare(*args)["accuracy"]
    assert acc["metric"] == "mAP@0.5"
    assert acc["a"]["map50"] == acc["b"]["map50"] == 100.0  # the one face, found by both
    assert acc["delta_points"] == 0.0
    assert 0 < acc["a"]["map50_95"] < 100
    # it can fail: the face box moved off the face -> no match at IoU 0.5
    far = coco(tmp_path, [0.0, 300.0, 90.0, 390.0])
    acc = compare(*args[:3], str(far), *args[4:])["accuracy"]
    assert acc["a"]["map50"] == 0.0


def test_refuses_models_that_cannot_be_compared(tmp_path):
    r = run_cli("models", "compare", str(model_path("digits_float32.tflite")),
                str(model_path("blazeface_int8.tflite")), "--data", "demo")
    assert r.returncode == ExitCode.NOT_COMPARABLE
    assert "takes [1, 8, 8, 1] but blazeface_int8.tflite takes [1, 128, 128, 3]" in r.stderr
    assert r.stderr.count("\n") == 1
    raw = tmp_path / "raw_face.tflite"
    shutil.copy(model_path("blazeface_int8.tflite"), raw)
    desc = json.loads(model_path("blazeface_int8.json").read_text())
    desc["decoder"] = {"name": "raw"}
    raw.with_suffix(".json").write_text(json.dumps(desc))
    r = run_cli("models", "compare", str(model_path("blazeface_float32.tflite")), str(raw),
                "--data", "demo")
    assert r.returncode == ExitCode.NOT_COMPARABLE
    assert "uses decoder 'blazeface' but raw_face.tflite uses 'raw'" in r.stderr


def test_bad_truth_and_data_get_one_line(tmp_path):
    a, b = str(model_path("digits_float32.tflite")), str(model_path("digits_int8.tflite"))
    (tmp_path / "cats" / "tabby").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "cats" / "tabby" / "x.png"), np.zeros((8, 8), np.uint8))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": [], '
                        '"categories": []}')
    cases = [
        (("--truth", str(tmp_path / "cats")), ExitCode.TRUTH, "class folder 'tabby'"),
        (("--truth", str(tmp_path / "nothing")), ExitCode.TRUTH, "ground truth not found"),
        (("--truth", str(bad_json)), ExitCode.TRUTH, "'gone.jpg' not found"),
        ((), ExitCode.SOURCE, "give --data"),
        (("--data", str(tmp_path / "no_such_clip.mp4")), ExitCode.SOURCE, "no_such_clip"),
    ]
    for args, code, text in cases:
        r = run_cli("models", "compare", a, b, *args)
        assert r.returncode == code, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and text in r.stderr, r.stderr
    r = run_cli("models", "compare", str(model_path("blazeface_float32.tflite")),
                str(model_path("blazeface_int8.tflite")), "--truth", str(tmp_path / "cats"))
    assert r.returncode == ExitCode.TRUTH and "for classification models" in r.stderr


CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


def test_html_report_in_headless_chromium(tmp_path):
    assert CHROMIUM and DRIVER, "apt-get install -y chromium chromium-driver (.ci/run does)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    html = tmp_path / "report.html"
    r = run_cli("models", "compare", str(model_path("digits_float32.tflite")),
                str(model_path("digits_int8.tflite")), "--truth",
                str(digits_folders(tmp_path / "truth", 0, 120)), "--runs", "30",
                "--html", str(html))
    assert r.returncode == 0, r.stderr
    text = html.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "https://" not in text and "<script" not in text
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,3000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(html.as_uri())
        summary = driver.find_element(By.ID, "summary").text
        assert summary.startswith("digits_int8: ") and "smaller" in summary
        costs = driver.find_element(By.ID, "costs").text
        for row in ("size", "load", "invoke p50", "invoke p95", "peak RSS of the model"):
            assert row in costs
        assert "top-1 %" in driver.page_source
        imgs = driver.find_elements(By.CSS_SELECTOR, "#frames img")
        assert imgs, "no disagreeing frame shown"
        for img in imgs:  # every picture decoded
            assert driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", img) >= 192
        svg = driver.find_elements(By.CSS_SELECTOR, "svg rect")
        assert len(svg) == 60  # 30 bins x A and B
        shot = tmp_path / "shot.png"
        first = imgs[0]
        driver.execute_script("arguments[0].scrollIntoView()", first)
        assert driver.save_screenshot(str(shot))
        rect = driver.execute_script("var r = arguments[0].getBoundingClientRect();"
                                     "return [r.left, r.top, r.width, r.height, "
                                     "window.devicePixelRatio];", first)
    finally:
        driver.quit()
    png = cv2.imread(str(shot))
    x, y, w, h, dpr = (float(v) for v in rect)
    crop = png[int(y * dpr) + 2:int((y + h) * dpr) - 2, int(x * dpr) + 2:int((x + w) * dpr) - 2]
    assert crop.size and crop.std() > 20, "the picture area is blank"
    # both results are drawn: A's text in green, B's in magenta (BGR)
    green = (crop[..., 1] > 150) & (crop[..., 0] < 120) & (crop[..., 2] < 120)
    magenta = (crop[..., 0] > 180) & (crop[..., 2] > 180) & (crop[..., 1] < 100)
    assert green.sum() > 20 and magenta.sum() > 20
    page = png[: png.shape[0] // 4]
    assert (page < 100).mean() > 0.002, "no text at the top of the page"
