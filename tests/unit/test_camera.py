"""Camera: slot policies, backoff, sources and the reader thread under failures (fake clock)."""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.camera import (
    Backoff,
    CameraReader,
    Frame,
    ImageFolderSource,
    LatestFrameSlot,
    OpenCVSource,
    SyntheticSource,
    open_source,
    synthetic_frame,
)
from edge_agent.camera.clips import synthetic_frames, write_clip
from edge_agent.camera.sources import FrameSource
from edge_agent.config import CameraConfig
from edge_agent.errors import FrameError, SourceError
from tests.support.fakes import FakeClock


def _frame(i: int) -> Frame:
    return Frame(np.zeros((2, 2, 3), np.uint8), i, float(i), float(i))


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


class TestSlot:
    def test_latest_replaces_and_counts(self) -> None:
        slot = LatestFrameSlot("latest")
        for i in range(5):
            assert slot.put(_frame(i))
        got = slot.get(timeout=0)
        assert got is not None and got.seq == 4
        assert slot.dropped == 4 and slot.put_count == 5 and slot.taken == 1

    def test_all_blocks_until_taken(self) -> None:
        slot = LatestFrameSlot("all")
        assert slot.put(_frame(0))
        assert not slot.put(_frame(1), timeout=0.01)  # full: waits, then gives up
        seen = []

        def consume() -> None:
            for _ in range(3):
                f = slot.get(timeout=2)
                assert f is not None
                seen.append(f.seq)

        t = threading.Thread(target=consume)
        t.start()
        assert slot.put(_frame(1), timeout=2) and slot.put(_frame(2), timeout=2)
        t.join(2)
        assert seen == [0, 1, 2] and slot.dropped == 0

    def test_close_wakes_and_refuses(self) -> None:
        slot = LatestFrameSlot("all")
        slot.close()
        assert not slot.put(_frame(0))
        assert slot.get(timeout=1) is None

    def test_unknown_policy(self) -> None:
        with pytest.raises(ValueError, match="policy"):
            LatestFrameSlot("newest")  # type: ignore[arg-type]


class TestBackoff:
    def test_exponential_capped_with_jitter(self) -> None:
        b = Backoff(0.5, 4.0, jitter=0.25, rng=random.Random(1))
        delays = [b.next_delay() for _ in range(7)]
        bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
        for d, base in zip(delays, bases, strict=True):
            assert 0.75 * base <= d <= base
        assert len(set(delays)) == len(delays)  # jittered
        b.reset()
        assert b.next_delay() <= 0.5


class TestSources:
    def test_synthetic_is_deterministic_and_moves(self) -> None:
        a, b = synthetic_frame(7), synthetic_frame(7)
        assert np.array_equal(a, b) and a.shape == (480, 640, 3)
        assert not np.array_equal(synthetic_frame(8), a)

    def test_open_source_dispatch(self, tmp_path: Path) -> None:
        assert isinstance(open_source(CameraConfig(source="synthetic")), SyntheticSource)
        cam = open_source(CameraConfig(source="0"))
        assert isinstance(cam, OpenCVSource) and cam.live and cam.target == 0
        assert open_source(CameraConfig(source="rtsp://10.0.0.1/s")).live
        assert isinstance(open_source(CameraConfig(source=str(tmp_path))), ImageFolderSource)
        video = open_source(CameraConfig(source=str(tmp_path / "x.avi")))
        assert isinstance(video, OpenCVSource) and not video.live

    def test_missing_and_garbage_video(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match="no such video file"):
            OpenCVSource(str(tmp_path / "gone.avi"), live=False).open()
        junk = tmp_path / "junk.avi"
        junk.write_bytes(b"not a video at all" * 10)
        with pytest.raises(SourceError, match="cannot open"):
            OpenCVSource(str(junk), live=False).open()

    def test_video_file_plays_and_ends(self, tmp_path: Path) -> None:
        path = tmp_path / "clip.avi"
        assert write_clip(path, synthetic_frames(4, 160, 120)) == 4
        src = OpenCVSource(str(path), live=False, loop=False)
        src.open()
        frames = [src.read() for _ in range(5)]
        assert [f is None for f in frames] == [False] * 4 + [True]
        src.close()

    def test_folder_skips_non_images(self, tmp_path: Path) -> None:
        cv2.imwrite(str(tmp_path / "a.png"), synthetic_frame(0, 64, 48))
        (tmp_path / "b.txt").write_text("hello")
        src = ImageFolderSource(tmp_path, loop=False)
        src.open()
        img = src.read()
        assert img is not None and img.shape == (48, 64, 3)
        with pytest.raises(FrameError, match=r"b\.txt: not a decodable image"):
            src.read()
        assert src.read() is None


def _reader(
    source: object, clock: FakeClock, policy: str = "all", max_delay: float = 8.0
) -> CameraReader:
    slot = LatestFrameSlot(policy)  # type: ignore[arg-type]
    return CameraReader(
        source,  # type: ignore[arg-type]
        slot,
        backoff=Backoff(0.5, max_delay, rng=random.Random(3)),
        clock=clock,
        sleep=clock.sleep,
        failed_after=3,
    )


def _drain(reader: CameraReader, n: int) -> list[Frame]:
    out = []
    for _ in range(n):
        f = reader.slot.get(timeout=10)
        assert f is not None
        out.append(f)
    return out


class TestReaderRecovery:
    def test_folder_with_non_image_and_changing_size(self, tmp_path: Path) -> None:
        cv2.imwrite(str(tmp_path / "a.png"), synthetic_frame(0, 64, 48))
        (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 truncated, not really a jpeg")
        cv2.imwrite(str(tmp_path / "c.png"), synthetic_frame(1, 32, 24))
        clock = FakeClock()
        reader = _reader(ImageFolderSource(tmp_path, loop=True), clock)
        reader.start()
        try:
            frames = _drain(reader, 6)
        finally:
            assert reader.stop(timeout=2)
        shapes = [f.image.shape[:2] for f in frames]
        assert shapes == [(48, 64), (24, 32)] * 3
        assert reader.bad_frames >= 2 and reader.size_changes >= 5
        assert "b.jpg" in (reader.last_error or "")
        assert reader.health == "stopped" and reader.failures == 0

    def test_file_removed_mid_run_backs_off_and_recovers(self, tmp_path: Path) -> None:
        path = tmp_path / "clip.avi"
        write_clip(path, synthetic_frames(3, 80, 60))
        saved = tmp_path / "saved.avi"
        shutil.copy(path, saved)
        clock = FakeClock()
        reader = _reader(OpenCVSource(str(path), live=False, loop=True), clock)
        reader.start()
        try:
            _drain(reader, 4)  # plays and loops
            path.unlink()
            # the frames decoded before the removal may still come; then the reopen fails
            def failed() -> bool:
                reader.slot.get(timeout=0)  # keep consuming what was decoded before
                return reader.health == "failed"

            wait_for(failed)
            assert reader.failures >= 3
            delays = list(reader.delays)
            assert delays[1] > delays[0] and delays[2] > delays[1]  # exponential
            assert "no such video file" in (reader.last_error or "")
            shutil.copy(saved, path)
            frames = _drain(reader, 3)
            assert reader.health == "ok" and frames[-1].image.shape == (60, 80, 3)
            assert reader.reconnects >= 1
        finally:
            assert reader.stop(timeout=2)

    def test_listeners_hear_frames_start_and_stop_flowing(self, tmp_path: Path) -> None:
        path = tmp_path / "clip.avi"
        saved = tmp_path / "saved.avi"
        write_clip(saved, synthetic_frames(3, 80, 60))
        clock = FakeClock()
        reader = _reader(OpenCVSource(str(path), live=False), clock)  # not there yet
        heard: list[str] = []
        reader.add_listener(lambda: heard.append(reader.health))
        reader.add_listener(self._boom)  # a failing listener is only logged
        reader.start()
        try:
            wait_for(lambda: reader.failures >= 2)
            assert heard == []  # starting -> reconnecting: still no frames, nothing to hear
            shutil.copy(saved, path)
            _drain(reader, 3)
            wait_for(lambda: reader.health == "ended")
            assert heard == ["ok", "ended"]
            reader.remove_listener(self._boom)
            assert len(reader._listeners) == 1  # removed by equality (bound methods)
        finally:
            assert reader.stop(timeout=2)
        assert heard == ["ok", "ended", "ended"]  # stop keeps "ended"; it is heard again

    def _boom(self) -> None:
        raise RuntimeError("listener bug")

    def test_unopenable_source_reports_failed_and_keeps_trying(self, tmp_path: Path) -> None:
        clock = FakeClock()
        reader = _reader(OpenCVSource(str(tmp_path / "none.avi"), live=False), clock)
        reader.start()
        try:
            wait_for(lambda: reader.failures >= 6)
            assert reader.health == "failed" and reader.frames == 0
            assert max(reader.delays) <= 8.0
            assert sum(clock.sleeps) >= 8.0  # waited on the fake clock, not for real
        finally:
            assert reader.stop(timeout=2)

    def test_latest_policy_drops_stale_frames(self) -> None:
        clock = FakeClock()
        source = SyntheticSource(64, 48, fps=None)
        reader = _reader(source, clock, policy="latest")
        reader.start()
        try:
            wait_for(lambda: reader.slot.put_count > 20)
        finally:
            assert reader.stop(timeout=2)
        slot = reader.slot
        assert slot.dropped >= 19 and slot.put_count == slot.dropped + slot.taken + slot.pending


class _ClipServer:
    """A real HTTP server for a folder; can go away and come back on the same port."""

    def __init__(self, folder: Path) -> None:
        import http.server

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: object, **k: object) -> None:
                super().__init__(*a, directory=str(folder), **k)  # type: ignore[arg-type]

            def log_message(self, *a: object) -> None:
                pass

        self._handler = Handler
        self._cls = http.server.ThreadingHTTPServer
        self.port = 0
        self.start()

    def start(self) -> None:
        self.server = self._cls(("127.0.0.1", self.port), self._handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2)


class TestStream:
    def test_stream_that_closes_reconnects_and_recovers(self, tmp_path: Path) -> None:
        write_clip(tmp_path / "cam.avi", synthetic_frames(5, 96, 72))
        server = _ClipServer(tmp_path)
        clock = FakeClock()
        url = f"http://127.0.0.1:{server.port}/cam.avi"
        # no cap within reach: however many retries happen before we look, each one waited
        # longer than the one before
        reader = _reader(open_source(CameraConfig(source=url)), clock, max_delay=1e9)
        reader.start()
        try:
            _drain(reader, 8)  # more than one clip: the end of the stream was a reconnect
            assert reader.reconnects >= 1 and "stream ended" in (reader.last_error or "")
            server.stop()

            def failed() -> bool:
                reader.slot.get(timeout=0)
                return reader.health == "failed"

            wait_for(failed)
            d = list(reader.delays)  # the streak that made it "failed": >= 3 in a row
            assert d[-1] > d[-2] > d[-3]
            server.start()
            _drain(reader, 3)
            assert reader.health == "ok"
        finally:
            assert reader.stop(timeout=3)
            server.stop()


def test_demo_source_is_the_shipped_clip_looping() -> None:
    src = open_source(CameraConfig(source="demo"))
    assert isinstance(src, OpenCVSource) and src.loop and src.pace_fps == 15.0
    src.open()
    try:
        first = src.read()
        assert first is not None and first.shape == (480, 640, 3)
    finally:
        src.close()


class _HangingSource(FrameSource):
    """A live source whose open blocks until released, then fails (a camera that hangs)."""

    name = "hanging"
    live = True

    def __init__(self) -> None:
        self.opens = 0
        self.release = threading.Event()

    def open(self) -> None:
        self.opens += 1
        self.release.wait(10)
        self.release.clear()
        raise SourceError("hanging: no answer")

    def read(self) -> np.ndarray | None:  # pragma: no cover - never opened
        return None


class TestWaiting:
    """``waiting()``: the watchdogs' view of a reader with no frames (fake clock)."""

    def test_waiting_within_the_step_budget_stuck_beyond(self) -> None:
        from edge_agent.camera.reader import OPEN_BUDGET_S

        clock = FakeClock()
        source = _HangingSource()
        reader = _reader(source, clock)
        assert not reader.waiting()  # not started
        reader.start()
        try:
            wait_for(lambda: source.opens == 1)
            assert reader.health == "starting" and reader.waiting()
            clock.advance(OPEN_BUDGET_S + 1)  # the open outlived its budget: a stall
            assert not reader.waiting()
            source.release.set()  # it fails, backs off (fake sleep), opens again
            wait_for(lambda: source.opens == 2)
            assert reader.health == "reconnecting" and reader.waiting()
        finally:
            source.release.set()
            reader.stop(timeout=2)
        assert not reader.waiting()

    def test_frames_flowing_is_not_waiting(self) -> None:
        clock = FakeClock()
        reader = _reader(SyntheticSource(32, 24, fps=None), clock, policy="latest")
        reader.start()
        try:
            wait_for(lambda: reader.health == "ok")
            assert not reader.waiting()
        finally:
            assert reader.stop(timeout=2)


class TestCheckForm:
    @pytest.mark.parametrize(
        "source",
        ["rtsp://cam.local:554/stream1", "http://10.0.0.7/mjpg", "udp://@:5000", "/dev/video3"],
    )
    def test_live_sources_that_are_well_formed(self, source: str) -> None:
        open_source(CameraConfig(source=source)).check_form()

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("rtsp://cam:99999/x", "port is not a number"),
            ("rtsp:///x", "no host"),
            ("rtps://cam/x", "unknown stream scheme 'rtps'"),
            ("http://cam/a b", "spaces or control characters"),
        ],
    )
    def test_malformed(self, source: str, message: str) -> None:
        with pytest.raises(SourceError, match=message):
            open_source(CameraConfig(source=source)).check_form()
