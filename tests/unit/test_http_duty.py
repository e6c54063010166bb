"""The /v1/infer duty cap's pure parts (issue 15): the token bucket, the contention signal, the
image header read that decides the inline path, and the pool's queueing under the cap. Clocks
are given, so nothing here depends on the machine's speed."""

from __future__ import annotations

import asyncio
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.api.bodies import image_pixels
from edge_agent.api.duty import ContentionWatch, DutyCap
from edge_agent.api.infer import Busy, InferPool
from tests.support.helpers import DATA, MODELS


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_duty_cap_lets_through_its_share_of_a_core() -> None:
    clock = Clock()
    cap = DutyCap(0.1, burst_s=1.0, clock=clock)
    assert cap.delay() == 0  # a full bucket: 0.1 s of work saved up
    cap.charge(0.3)  # a request that took 0.3 s: 0.2 s in debt
    assert cap.delay() == pytest.approx(2.0)  # paid back at 0.1 s a second
    clock.t += 1.5
    assert cap.delay() == pytest.approx(0.5)
    clock.t += 0.5
    assert cap.delay() == 0
    clock.t += 100  # idle: at most burst_s worth saved up, not 10 s
    cap.charge(0.15)
    assert cap.delay() == pytest.approx(0.5)
    cap.fill()
    assert cap.delay() == 0
    with pytest.raises(ValueError, match="above 0"):
        DutyCap(0)


def test_duty_config_rules() -> None:
    from edge_agent.config import parse_config
    from edge_agent.errors import ConfigError

    http = parse_config({}).http
    assert http.infer_duty == 0.05 and http.inline_max_pixels == 500_000
    assert parse_config({"http": {"infer_duty": 0}}).http.infer_duty == 0  # never capped
    for key, bad in (("infer_duty", -0.1), ("infer_duty", "half"), ("inline_max_pixels", -1)):
        with pytest.raises(ConfigError, match=rf"http\.{key}"):
            parse_config({"http": {key: bad}})


def test_contention_follows_stale_drops_and_holds_after_the_last() -> None:
    clock = Clock()
    stale = [0]
    reads = [0]

    def read() -> int:
        reads[0] += 1
        return stale[0]

    watch = ContentionWatch(read, lambda: False, hold_s=5.0, every_s=0.25, clock=clock)
    assert not watch.contended()  # the first look has nothing to compare with
    clock.t += 1
    assert not watch.contended()  # no drop since
    stale[0] = 3
    assert not watch.contended() and reads[0] == 2  # read at most every 0.25 s
    clock.t += 0.3
    assert watch.contended()  # drops grew
    clock.t += 4.0
    assert watch.contended()  # held, no new drop
    clock.t += 1.5
    assert not watch.contended()  # 5 s after the last drop
    flat = ContentionWatch(lambda: 0, lambda: True, clock=clock)
    assert flat.contended()  # policy "all": always has work


def _encoded(ext: str, w: int, h: int, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, np.zeros((h, w, 3), np.uint8), list(params))
    assert ok
    return buf.tobytes()


def test_image_pixels_from_the_header() -> None:
    assert image_pixels((DATA / "astronaut.jpg").read_bytes()) == 512 * 512
    assert image_pixels(_encoded(".jpg", 640, 480)) == 640 * 480
    assert image_pixels(_encoded(".jpg", 40, 30, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)) == 1200
    assert image_pixels(_encoded(".png", 1000, 700)) == 700_000
    assert image_pixels(_encoded(".bmp", 10, 10)) is None  # another format: assumed big
    jpeg = (DATA / "astronaut.jpg").read_bytes()
    for bad in (b"", b"\xff\xd8", b"\xff\xd8\xff", jpeg[:20], b"\xff\xd8\x00\x00garbage",
                b"\x89PNG\r\n\x1a\n\x00\x00"):
        assert image_pixels(bad) is None, bad


@pytest.fixture
def runner() -> Any:
    from edge_agent.inference import Runner

    return Runner.open(MODELS / "blazeface_int8.tflite")


class _Pipeline:
    def __init__(self) -> None:
        self.stale = 0


def test_pool_under_the_cap_queues_then_refuses_with_retry_after(runner: Any) -> None:
    clock = Clock()
    pipe = _Pipeline()
    pool = InferPool(lambda: runner, workers=1, max_pending=2)
    watch = ContentionWatch(lambda: pipe.stale, lambda: False, every_s=0.0, clock=clock)
    pool.set_duty_cap(0.01, watch)
    pool.cap = DutyCap(0.01, clock=clock)  # the same cap on the test's clock
    ran: list[int] = []

    def work(i: int) -> int:
        ran.append(i)
        return i

    async def scenario() -> None:
        pool.admit()
        assert await pool.run_request(work, 0) == 0  # not contended: runs, nothing held
        pool.release()
        assert pool.counts["throttled"] == 0 and not pool.capped()
        pipe.stale = 5  # the camera's frames start being dropped
        assert pool.capped()
        pool.cap.charge(0.05)  # the cap is filled when it starts: this debt is forgotten
        pool.admit()
        assert await pool.run_request(work, 1) == 1
        pool.release()
        assert pool.counts["throttled"] == 0
        pool.cap.charge(0.011)  # now in debt: the next request waits (asyncio.sleep 0.1 s)
        pool.admit()
        task = asyncio.ensure_future(pool.run_request(work, 2))
        await asyncio.sleep(0)
        assert ran == [0, 1]  # waiting for the cap, holding its slot
        pool.admit()  # the second slot
        with pytest.raises(Busy, match="duty cap") as busy:
            pool.admit()
        assert busy.value.retry_after >= 1
        clock.t += 10  # the debt paid back
        assert await task == 2
        pool.release()
        pool.release()

    asyncio.run(scenario())
    assert pool.counts["throttled"] == 1 and pool.throttle_wait_s > 0
    assert pool.counts["busy"] == 1


def test_small_images_run_inline_only_when_nothing_else_is_served(runner: Any) -> None:
    pool = InferPool(lambda: runner, workers=1, max_pending=4, inline_max_pixels=300_000)
    photo = (DATA / "astronaut.jpg").read_bytes()
    pixels = image_pixels(photo)
    others = [0]
    pool.others = lambda: others[0]

    async def one(px: int | None) -> None:
        pool.admit()
        try:
            out = await pool.run_request(pool.run_bytes, photo, pixels=px)
            assert len(out["detections"]) == 1
        finally:
            pool.release()

    async def scenario() -> None:
        await one(pixels)  # the first builds the interpreter: on a pool thread
        assert pool.counts["inline"] == 0
        await one(pixels)
        assert pool.counts["inline"] == 1
        await one(None)  # a format whose size the header does not say
        await one(300_001)  # over the bound
        others[0] = 1  # another request being read or answered: it would wait behind this one
        await one(pixels)
        assert pool.counts["inline"] == 1

    asyncio.run(scenario())
    pool.close()
