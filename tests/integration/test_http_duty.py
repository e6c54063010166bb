"""/v1/infer's duty cap against the real server inside a running agent (issue 15): a camera
the pipeline cannot keep up with (synthetic at 1000 fps: it drops stale frames) holds the API to
``http.infer_duty``, queueing within ``http.max_infer`` and refusing beyond it with 429 and a
Retry-After; a camera it keeps up with leaves the API uncapped, and a small image runs inline.
Assertions are on the agent's own counters, never on how long anything took."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import DATA, wait_until
from tests.support.http_agent import HttpAgent

PHOTO = (DATA / "astronaut.jpg").read_bytes()
JPEG = {"Content-Type": "image/jpeg"}


def metrics(a: HttpAgent) -> dict[str, float]:
    out = {}
    for fam in text_string_to_metric_families(a.get("/metrics").body.decode()):
        for s in fam.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


def burst(a: HttpAgent, n: int) -> list[Any]:
    replies: list[Any] = []
    lock = threading.Lock()
    go = threading.Event()

    def one() -> None:
        go.wait()
        r = a.post("/v1/infer", PHOTO, headers=JPEG, timeout=120)
        with lock:
            replies.append(r)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(180)
    return replies


def test_a_contended_pipeline_holds_the_api_to_its_duty(tmp_path: Path) -> None:
    # 0.002 of a core: ~6 ms of CPU a request pays back in ~3 s, so a burst queues and overflows
    a = HttpAgent(tmp_path, camera={"source": "synthetic", "fps": 1000},
                  http={"infer_duty": 0.002, "max_infer": 2})
    try:
        assert wait_until(lambda: metrics(a)["edge_agent_http_infer_capped"] == 1, 60), \
            a.log_text()
        assert a.post("/v1/infer", PHOTO, headers=JPEG).status == 200  # the bucket's first
        replies = burst(a, 8)
        codes = sorted(r.status for r in replies)
        assert set(codes) <= {200, 429}, codes
        assert codes.count(200) >= 1, codes  # queued behind the cap, then served
        refused = [r for r in replies if r.status == 429]
        assert refused, codes  # the two slots held by waiting requests: the rest refused
        for r in refused:
            assert "duty cap" in r.json()["detail"], r
            assert int(r.headers["retry-after"]) >= 1, r.headers
        m = metrics(a)
        assert m["edge_agent_http_infer_throttled_total"] >= 1, m
        assert m["edge_agent_http_infer_throttle_seconds_total"] > 0, m
        assert m["edge_agent_http_infer_requests_total{outcome=busy}"] == len(refused), m
        assert m["edge_agent_frames_dropped_total{reason=stale}"] > 0, m
        http = a.get("/v1/status").json()["metrics"]["http"]  # the last heartbeat's
        assert wait_until(lambda: a.get("/v1/status").json()["metrics"]["http"]["throttled"]
                          >= 1, 20), http
        status = a.get("/v1/status").json()["metrics"]["http"]
        assert status["duty_cap"]["infer_duty"] == 0.002, status
        before = a.processed()
        assert wait_until(lambda: a.processed() > before, 30)  # the pipeline runs on
    finally:
        assert a.stop() == 0, a.log_text()


def test_a_pipeline_that_keeps_up_leaves_the_api_uncapped(tmp_path: Path) -> None:
    # 2 fps: a frame is dropped as stale only if the pipeline stalls for half a second
    a = HttpAgent(tmp_path, camera={"source": "synthetic", "fps": 2},
                  http={"infer_duty": 0.002, "max_infer": 2})
    try:
        assert wait_until(lambda: a.processed() > 2, 60), a.log_text()
        for _ in range(6):
            assert a.post("/v1/infer", PHOTO, headers=JPEG).status == 200
        ok, big = cv2.imencode(".png", np.full((1000, 800, 3), 128, np.uint8))  # 0.8 MP
        assert ok
        r = a.post("/v1/infer", big.tobytes(), headers={"Content-Type": "image/png"})
        assert r.status == 200 and r.json()["image"] == {"width": 800, "height": 1000}, r
        m = metrics(a)
        assert m["edge_agent_frames_dropped_total{reason=stale}"] == 0, m
        assert m["edge_agent_http_infer_capped"] == 0, m
        assert m["edge_agent_http_infer_throttled_total"] == 0, m
        assert m["edge_agent_http_infer_requests_total{outcome=ok}"] == 7, m
        assert wait_until(lambda: a.get("/v1/status").json()["metrics"]["http"]["ok"] == 7, 20)
        infer = a.get("/v1/status").json()["metrics"]["http"]["infer"]
        # the first builds the API's interpreter on a pool thread; the next five small ones run
        # inline; the 0.8 MP PNG is over http.inline_max_pixels (0.5 MP): on a pool thread
        assert infer["inline"] == 5, infer
    finally:
        assert a.stop() == 0, a.log_text()
