"""Event seq bookkeeping: lost events are gaps, a seq going backwards is a board reset."""

from __future__ import annotations

from firmware_bridge.eventseq import WRAP_WINDOW, EventSeq, SeqStep


def steps(seqs: list[int], boots: tuple[int, ...] = ()) -> list[SeqStep]:
    t = EventSeq()
    return [t.observe(s, boot=i in boots) for i, s in enumerate(seqs)]


def test_consecutive_and_lost_events() -> None:
    out = steps([5, 6, 7, 10, 11])
    assert [s.missed for s in out] == [0, 0, 0, 2, 0]
    assert not any(s.reset for s in out)


def test_a_seq_going_backwards_is_a_reset_not_65000_gaps() -> None:
    out = steps([800, 801, 2, 3])  # the board reset and its BOOT (seq 1) was lost
    assert out[2] == SeqStep(missed=0, reset=True, previous=801)
    assert out[3] == SeqStep(missed=0, previous=2)
    assert sum(s.missed for s in out) == 0


def test_a_repeated_seq_is_a_reset() -> None:  # the board never sends a seq twice
    assert steps([2, 2])[1].reset


def test_wrapping_from_0xffff_is_not_a_reset() -> None:
    out = steps([0xFFFE, 0xFFFF, 0, 1, 3])
    assert [s.missed for s in out] == [0, 0, 0, 0, 1] and not any(s.reset for s in out)
    lost_across = steps([0xFFFD, 2])[1]  # 0xFFFE, 0xFFFF, 0, 1 lost
    assert lost_across == SeqStep(missed=4, previous=0xFFFD)
    far = steps([0xFFFF - WRAP_WINDOW, 5])[1]  # too far back to be a wrap
    assert far.reset and far.missed == 0


def test_boot_and_forget_start_a_new_count() -> None:
    out = steps([900, 1, 2], boots=(1,))  # the BOOT arrived: it is the reset, no gap
    assert [(s.missed, s.reset) for s in out] == [(0, False)] * 3
    t = EventSeq()
    t.observe(900)
    t.forget()  # the link came back: whatever the board sends next starts over
    assert t.observe(3) == SeqStep()
