"""Reconnect backoff: jitter bounds, growth, and the reset once a connection held (pure)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.common.backoff import Backoff, HeldBackoff
from edge_agent.mqtt.link import RECONNECT_JITTER, Link, LinkSettings
from tests.support.fakes import FakeClock


@given(st.integers(min_value=0, max_value=2**32), st.floats(0.0, 0.9))
def test_every_delay_is_within_its_jitter_band(seed: int, jitter: float) -> None:
    b = Backoff(1.0, 60.0, jitter=jitter, rng=random.Random(seed))
    for n in range(12):
        base = min(60.0, 2.0**n)
        assert base * (1 - jitter) <= b.next_delay() <= base


def test_jitter_spreads_a_fleet() -> None:
    """100 devices that lost the same broker do not retry in lockstep."""
    firsts = [Backoff(1.0, 60.0, jitter=0.5, rng=random.Random(i)).next_delay()
              for i in range(100)]
    assert min(firsts) >= 0.5 and max(firsts) <= 1.0
    assert max(firsts) - min(firsts) > 0.3 and len({round(d, 3) for d in firsts}) > 90


def test_reset_only_once_a_connection_held() -> None:
    clock = FakeClock(start=0.0)
    hb = HeldBackoff(Backoff(1.0, 60.0, jitter=0.0), hold_s=10.0)
    assert [hb.next_delay(clock()) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]  # broker down
    for _ in range(3):  # a flapping broker: accepts, drops after 2 s
        hb.up(clock())
        clock.advance(2.0)
        hb.next_delay(clock())
    assert hb.backoff.attempts == 7  # still growing: those connections did not hold
    hb.up(clock())
    clock.advance(10.0)  # this one held
    assert hb.next_delay(clock()) == 1.0
    assert hb.next_delay(clock()) == 2.0


def test_link_hands_each_retry_delay_to_paho() -> None:
    clock = FakeClock(start=0.0)
    link = Link(LinkSettings(reconnect_initial_s=1.0, reconnect_max_s=8.0), subscriptions=[],
                clock=clock, rng=random.Random(7))
    client = link._client
    delays: list[float] = []
    for _ in range(5):
        link._handle_connect_fail(client, None)
        assert link.retry_delay_s is not None
        delays.append(link.retry_delay_s)
        assert client._reconnect_min_delay == client._reconnect_max_delay == link.retry_delay_s
    for d, base in zip(delays, [1, 2, 4, 8, 8], strict=True):
        assert base * (1 - RECONNECT_JITTER) <= d <= base
    link._handle_connect(client, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
    clock.advance(30.0)
    lost = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
    link._handle_disconnect(client, None, None, lost, None)
    assert link.retry_delay_s is not None
    assert 1 - RECONNECT_JITTER <= link.retry_delay_s <= 1.0  # reset: the connection held
