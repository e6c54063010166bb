"""The technician's page in a real headless browser (Debian's chromium + chromium-driver through
Selenium, offline: the driver's path is given, Selenium Manager never runs) on the demo clip:
the live view shows the annotated frame with the face box, the chart gains points, the model and
health are shown. The screenshot is kept in the test's folder (``page.png``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.helpers import wait_until
from tests.support.http_agent import HttpAgent


def _driver() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    drv = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if exe is None or not Path(drv).exists():
        pytest.fail("chromium and chromium-driver are not installed (scripts/test installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1100", "--force-device-scale-factor=1",
                 "--no-first-run", "--disable-background-networking"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=drv), options=opts)


def test_the_page_shows_the_live_view_with_the_face_box_and_a_moving_chart(
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    a = HttpAgent(tmp_path, token=True)
    try:
        driver = _driver()
    except BaseException:
        a.stop()
        raise
    try:
        driver.get(f"http://127.0.0.1:{a.port}/#token={a.token}")  # type: ignore[attr-defined]
        find = driver.find_element  # type: ignore[attr-defined]
        script = driver.execute_script  # type: ignore[attr-defined]
        assert wait_until(lambda: script(
            "const i = document.getElementById('live'); return i.complete && i.naturalWidth"
        ) == 640, 60), find(By.ID, "live-note").text
        assert wait_until(lambda: int(find(By.ID, "chart").get_attribute("data-points")) >= 2,
                          60)
        first = int(find(By.ID, "chart").get_attribute("data-points"))
        assert wait_until(lambda: int(find(By.ID, "chart").get_attribute("data-points"))
                          > first, 60), "the chart did not update"
        assert wait_until(lambda: "face" in find(By.ID, "detections").text, 30)
        assert "blazeface_int8" in find(By.ID, "model").text
        assert "camera" in find(By.ID, "health").text and "ok" in find(By.ID, "health").text
        legend = find(By.ID, "legend").text
        assert "fps" in legend and "invoke p50" in legend, legend
        time.sleep(0.5)  # a fresh frame in the view
        shot = tmp_path / "page.png"
        assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
        rect = find(By.ID, "live").rect
    finally:
        driver.quit()  # type: ignore[attr-defined]
        assert a.stop() == 0, a.log_text()
    page = cv2.imread(str(shot))
    x, y, w, h = (round(rect[k]) for k in ("x", "y", "width", "height"))
    view = page[y:y + h, x:x + w]
    assert view.shape[0] > 200 and view.shape[1] > 300, (rect, page.shape)
    assert view.std() > 20  # a picture, not an empty box
    b, g, r = (view[..., i].astype(int) for i in range(3))
    green = (g > 180) & (r < 90) & (b < 90)  # annotate.py draws boxes in pure green
    ys, xs = np.nonzero(green)
    assert len(xs) > 50, "no face box in the live view"
    bw, bh = (xs.max() - xs.min()) / w, (ys.max() - ys.min()) / h
    assert 0.05 < bw < 0.7 and 0.05 < bh < 0.9, (bw, bh)  # one face-sized box
