"""CaptureStore: the rate limit and the count/byte bounds of <state_dir>/captures."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.bridge.captures import CaptureLimits, CaptureStore
from tests.support.fakes import FakeClock


def capture(store: CaptureStore, count: int, size: int) -> Path:
    folder = store.new_folder(count)
    folder.mkdir(parents=True)
    (folder / "frame-00000001.jpg").write_bytes(b"\xff" * size)
    return folder


def test_rate_limit_allows_the_burst_then_per_minute() -> None:
    clock = FakeClock()
    store = CaptureStore(Path("unused"), CaptureLimits(per_minute=6, burst=3), clock=clock)
    assert [store.admit() for _ in range(5)] == [True, True, True, False, False]
    clock.advance(10)  # 6 per minute: one more every 10 s
    assert store.admit() and not store.admit()


def test_prune_keeps_the_newest_within_count_and_bytes(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "captures", CaptureLimits(max_count=3, max_bytes=10_000))
    made = []
    for i in range(6):
        made.append(capture(store, i, 1000))
        os.utime(made[-1], (1_700_000_000 + i, 1_700_000_000 + i))
    assert store.prune() == 3
    assert store.folders() == made[3:]
    assert store.prune(room=1) == 1 and store.folders() == made[4:]
    big = capture(store, 9, 9_500)
    os.utime(big, (1_700_000_100, 1_700_000_100))
    assert store.prune() == 2  # 11,500 bytes > 10,000: the oldest go first
    assert store.folders() == [big] and store.usage() == (1, 9_500)


def test_prune_never_follows_a_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    store = CaptureStore(tmp_path / "captures", CaptureLimits(max_count=1))
    store.root.mkdir()
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    capture(store, 1, 10)
    capture(store, 2, 10)
    assert store.prune() == 1
    assert (outside / "keep.txt").exists() and (store.root / "link").is_symlink()


def test_discard_removes_only_a_capture_of_its_own(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "captures")
    mine = capture(store, 1, 10)
    other = tmp_path / "other"
    other.mkdir()
    store.discard(other)
    store.discard(mine)
    assert other.exists() and not mine.exists()
