"""The outbox's delivery order (pure): in flight, last handed, acked rows deleted in batches."""

from __future__ import annotations

from edge_agent.mqtt.delivery import Delivery


def test_rows_are_handed_in_order_within_the_inflight_window() -> None:
    d = Delivery(3)
    assert d.room() == 3 and d.last_handed == 0
    for mid, row in ((11, 1), (12, 2), (13, 3)):
        d.handed(mid, row)
    assert d.room() == 0 and d.last_handed == 3  # the next fetch starts after row 3
    assert d.ack(12, now=0.0) == 2 and d.room() == 1
    assert d.ack(99, now=0.0) is None  # a status or reply message: not an outbox row
    assert d.acked == [2]


def test_acks_are_deleted_in_batches_after_a_delay_or_when_idle() -> None:
    d = Delivery(10, flush_s=0.05, batch=3)
    for i in range(1, 6):
        d.handed(100 + i, i)
    d.ack(101, now=1.0)
    assert d.due(now=1.01) == []  # more may come: wait a moment
    assert d.due(now=1.06) == [1]  # the first ack of the batch is 50 ms old
    d.deleted([1])
    d.ack(102, now=2.0)
    d.ack(103, now=2.0)
    d.ack(104, now=2.0)
    assert d.due(now=2.0) == [2, 3, 4]  # a full batch at once
    d.deleted([2, 3, 4])
    d.ack(105, now=3.0)
    assert d.due(now=3.0) == [5]  # nothing in flight any more: delete now
    assert d.due(now=3.0, force=True) == [5]


def test_a_failed_delete_is_tried_again() -> None:
    d = Delivery(4, batch=1)
    d.handed(1, 7)
    d.ack(1, now=0.0)
    rows = d.due(now=0.0)
    assert rows == [7]
    # the delete raised (disk full): deleted() not called, the rows are still due
    assert d.due(now=0.1) == [7]
    d.deleted(rows)
    assert d.due(now=0.2) == [] and d.acked == []
