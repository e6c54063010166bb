"""The economy's decisions (pure): when one interpreter thread is used, when it is left, and
that it does not flap."""

from __future__ import annotations

import pytest

from edge_agent.agent.economy import HOLD_S, MIN_FRAMES, Economy, Window


def camera(busy_share: float, invoke_share: float, frames: int = 30, stale: int = 0) -> Window:
    """A 2 s window in which the invoking thread was busy / invoking these shares of the time."""
    return Window(2.0, frames, 2.0 * busy_share, 2.0 * invoke_share, stale)


def test_enters_economy_when_one_thread_would_still_leave_half_the_time_idle() -> None:
    e = Economy(threads=2)
    assert e.threads_in_use == 2 and e.reason == "not measured yet"
    # busy 20 %, 10 % of it invoking: one thread, assumed 2x slower, would be busy 30 %
    assert e.decide(camera(0.20, 0.10), now=10.0) is True
    assert e.active and e.threads_in_use == 1 and e.switches == 1
    assert "projected busy 30%" in e.reason and "assumed" in e.reason


def test_stays_on_full_threads_when_one_thread_would_be_too_busy() -> None:
    e = Economy(threads=4)
    # invoke 15 % on 4 threads: assumed 4x on one -> 30 + 45 = 75 % busy
    assert e.decide(camera(0.30, 0.15), now=10.0) is None
    assert not e.active and "would be busy 75%" in e.reason


def test_a_stale_frame_keeps_full_threads() -> None:
    e = Economy(threads=2)
    assert e.decide(camera(0.10, 0.05, stale=1), now=10.0) is None
    assert not e.active


def test_too_short_a_window_decides_nothing() -> None:
    e = Economy(threads=2)
    assert e.decide(camera(0.1, 0.05, frames=MIN_FRAMES - 1), now=10.0) is None
    assert e.decide(Window(0.0, 30, 0.0, 0.0), now=10.0) is None
    assert not e.active


@pytest.mark.parametrize("window", [camera(0.80, 0.60), camera(0.30, 0.20, frames=30, stale=3)])
def test_leaves_economy_when_busy_or_frames_go_stale_and_holds_off(window: Window) -> None:
    e = Economy(threads=2)
    assert e.decide(camera(0.10, 0.05), now=10.0) is True
    assert e.decide(window, now=12.0) is False
    assert not e.active and e.threads_in_use == 2 and e.switches == 2
    assert e.reason.startswith("left economy")
    # quiet again at once: held off, then judged with the measured slowdown
    assert e.decide(camera(0.10, 0.05), now=14.0) is None
    assert "held off" in e.reason
    assert e.slowdown is not None


def test_after_leaving_the_measured_slowdown_keeps_it_from_flapping() -> None:
    e = Economy(threads=2)
    assert e.decide(camera(0.20, 0.10), now=0.0) is True  # per invoke 0.10 * 2 / 30 on 2 threads
    # on one thread the invoke took 6x as long and the thread was busy 80 %: leave
    assert e.decide(camera(0.80, 0.60), now=2.0) is False
    assert e.slowdown == pytest.approx(6.0)
    # long after the hold-off, the same load: 6x projects 20 + 5 * 10 = 70 % -> stay
    assert e.decide(camera(0.20, 0.10), now=2.0 + HOLD_S + 1) is None
    assert not e.active and "would be busy 70%" in e.reason
    # a camera 10x slower (the same invoke, a tenth of the frames in the time): 2 + 5 = 7 %
    # -> economy again, now with the measured slowdown
    assert e.decide(Window(20.0, 30, 0.4, 0.2), now=2.0 + HOLD_S + 21) is True
    assert "projected busy 7%" in e.reason and "6.0x" in e.reason and "assumed" not in e.reason


def test_each_leave_doubles_the_hold_off() -> None:
    e = Economy(threads=2)
    now = 0.0
    for hold in (HOLD_S, 2 * HOLD_S, 4 * HOLD_S):
        assert e.decide(camera(0.1, 0.05), now=now) is True
        assert e.decide(camera(0.9, 0.1), now=now + 2) is False  # busy: leave
        assert e.decide(camera(0.1, 0.05), now=now + 2 + hold - 1) is None
        now += 2 + hold
    assert e.leaves == 3


def test_off_and_single_thread_never_switch() -> None:
    off = Economy(threads=2, setting="off")
    one = Economy(threads=1)
    for e in (off, one):
        assert not e.enabled
        assert e.decide(camera(0.01, 0.005), now=10.0) is None
        assert e.threads_in_use == e.threads
    assert off.reason == "off (pipeline.economy)"
    assert one.reason == "the interpreter runs on 1 thread"
    with pytest.raises(ValueError, match="unknown pipeline economy 'sometimes'"):
        Economy(threads=2, setting="sometimes")  # type: ignore[arg-type]


def test_reset_and_hold() -> None:
    e = Economy(threads=2)
    assert e.decide(camera(0.1, 0.05), now=0.0) is True
    e.hold("1 thread not used while the model is under trial")
    assert not e.active and e.switches == 2 and "under trial" in e.reason
    assert e.decide(camera(0.1, 0.05), now=2.0) is True
    e.reset(now=3.0)
    assert not e.active and e.slowdown is None and e.reason == "model swapped: measuring again"
    assert e.to_json() == {"setting": "auto", "active": False, "threads_in_use": 2,
                           "slowdown": None, "switches": 3,
                           "reason": "model swapped: measuring again"}
