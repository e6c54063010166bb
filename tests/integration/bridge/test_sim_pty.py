"""The Python host against the C simulator over a real pseudo-terminal (socat)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from firmware_bridge import BridgeClient, BridgeNack, BridgePortError, BridgeTimeout, Event, MsgType
from firmware_bridge.testing import SimPort, TcpSim, wait_for


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        with self.lock:
            self.events.append(e)

    def kinds(self, kind: str) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.kind == kind]


def test_hello(client: BridgeClient) -> None:
    info = client.hello()
    assert info.name == "edge-sim" and info.proto == 1 and info.firmware == "1.0.0"
    assert info.reset_reason == "power-on"
    assert {"telemetry", "watchdog", "gpio", "trigger", "simulator"} == set(info.capabilities)
    assert info.outputs == list(range(8)) and info.inputs == list(range(8, 16))


def test_ping_round_trip(client: BridgeClient) -> None:
    rtts = [client.ping(bytes(range(n))) for n in (0, 1, 100, 240)]
    assert all(r > 0 for r in rtts)
    assert client.counters()["timeouts"] == 0


def test_telemetry(client: BridgeClient) -> None:
    t = client.telemetry()
    assert 0.2 <= t.accel_util <= 0.9
    assert t.rail_v == 12.0 and t.power_w == pytest.approx(t.rail_v * t.rail_a, abs=1e-3)
    assert 30 < t.board_temp_c < 80 and 30 < t.accel_temp_c < 80
    assert t.fan_rpm > 1000 and t.bitstream == client.hello().bitstream


def test_gpio_set_and_input_event_via_loopback(client: BridgeClient) -> None:
    rec = Recorder()
    client.add_listener(rec)
    client.gpio_set(7, 1)  # the simulator wires output 7 to input 15
    assert client.gpio_get(7) == (7, 1, True)
    assert wait_for(lambda: any(e.data["pin"] == 15 for e in rec.kinds("gpio")))
    assert client.gpio_get(15) == (15, 1, False)
    client.gpio_set(3, 1, hold_ms=100)
    assert client.gpio_get(3)[1] == 1
    assert wait_for(lambda: client.gpio_get(3)[1] == 0)  # the board ends the hold itself
    with pytest.raises(BridgeNack, match="GPIO_SET: bad_arg"):
        client.gpio_set(12, 1)  # an input


def test_trigger_event(client: BridgeClient) -> None:
    rec = Recorder()
    client.add_listener(rec)
    client.trigger_configure(9, "rising")
    client.sim_input(9, 1)
    assert wait_for(lambda: len(rec.kinds("trigger")) == 1)
    trig = rec.kinds("trigger")[0]
    assert trig.data["pin"] == 9 and trig.data["count"] == 1
    client.sim_input(9, 0)
    client.sim_input(9, 1)
    assert wait_for(lambda: len(rec.kinds("trigger")) == 2)
    assert client.counters()["event_gaps"] == 0


def test_watchdog_resets_board_when_kicks_stop(client: BridgeClient) -> None:
    rec = Recorder()
    client.add_listener(rec)
    client.gpio_set(2, 1)
    client.watchdog_configure(600)
    for _ in range(8):  # kicked: 1.2 s > 600 ms, no reset
        time.sleep(0.1)
        client.watchdog_kick()

    def watchdog_boots() -> list[Event]:  # the power-on BOOT may race with opening the port
        return [e for e in rec.kinds("boot") if e.data["reset_reason"] == "watchdog"]

    assert watchdog_boots() == []
    assert wait_for(lambda: len(watchdog_boots()) == 1)  # kicks stopped
    info = client.hello()
    assert info.reset_reason == "watchdog" and info.boot_count == 2
    assert client.reset_reason() == ("watchdog", 2)
    assert client.gpio_get(2)[1] == 0  # outputs low after a reset
    assert client.telemetry().watchdog_timeout_ms == 0
    client.reset()
    assert wait_for(lambda: client.hello().reset_reason == "software")


def test_nack_is_not_retried(client: BridgeClient) -> None:
    with pytest.raises(BridgeNack, match="state"):
        client.watchdog_kick()  # watchdog off
    with pytest.raises(BridgeNack, match="unknown_type"):
        client.request(0x2F)
    c = client.counters()
    assert c["nacks"] == 2 and c["retries"] == 0


def test_noisy_line_every_request_still_answered(tmp_path: Path) -> None:
    """The simulator corrupts 20 % of its frames and sprays bytes between them."""
    with (
        SimPort(tmp_path, sim_args=("--noise", "20", "--seed", "7")) as sim,
        BridgeClient(sim.url, timeout_s=0.1, retries=8).open() as c,
    ):
        for i in range(60):
            assert c.ping(i.to_bytes(2, "little") * 20) > 0
        counts = c.counters()
    assert counts["frames_ok"] >= 60
    assert counts["crc_errors"] + counts["framing_errors"] > 0
    assert counts["retries"] > 0 and counts["timeouts"] == 0


def test_simulator_killed_and_restarted(sim: SimPort) -> None:
    rec = Recorder()
    with BridgeClient(sim.url, timeout_s=0.2, retries=1, backoff_max_s=0.2).open() as c:
        c.add_listener(rec)
        assert c.hello().name == "edge-sim"
        results: list[BaseException | None] = []

        def in_flight() -> None:
            try:
                c.telemetry()
                results.append(None)
            except BaseException as exc:
                results.append(exc)

        sim.kill()
        th = threading.Thread(target=in_flight)
        th.start()
        th.join(5)
        assert not th.is_alive()  # no hang: 2 attempts of 0.2 s, then an error
        assert isinstance(results[0], BridgeTimeout)
        assert "no answer to TELEMETRY_GET" in str(results[0])
        assert wait_for(lambda: not c.connected)
        assert any(e.data == {"connected": False, "port": sim.url} for e in rec.kinds("link"))
        sim.start()
        assert wait_for(lambda: c.connected, timeout=5)
        assert c.hello().reset_reason == "power-on"
        counts = c.counters()
        assert counts["reconnects"] >= 1 and counts["timeouts"] == 1
        assert rec.kinds("link")[-1].data["connected"] is True


def _toggle(c: BridgeClient, times: int) -> None:
    for i in range(times):  # input 9 up and down: one GPIO event each
        c.sim_input(9, (i + 1) % 2)


@pytest.mark.parametrize("boot_lost", [False, True])
def test_board_restarted_behind_the_same_pty_is_a_reset_not_gaps(
    tmp_path: Path, boot_lost: bool
) -> None:
    """A board power-cycled behind a USB-serial adapter that stays: the port never closes,
    the board's event seq starts again at 1. With its BOOT event garbled on the line, the
    host sees the reset only as the seq going back: one reset, not ~65,000 lost events."""
    args = ("--garble-boot",) if boot_lost else ()
    rec = Recorder()
    with SimPort(tmp_path, sim_args=args, restartable=True) as sim:
        with BridgeClient(sim.url, timeout_s=0.3, retries=2).open() as c:
            c.add_listener(rec)
            _toggle(c, 20)
            assert wait_for(lambda: len(rec.kinds("gpio")) == 20)
            sim.restart_board()
            assert wait_for(lambda: c.hello().boot_count == 1)  # a new board process
            _toggle(c, 5)
            assert wait_for(lambda: len(rec.kinds("gpio")) == 25)
            counts = c.counters()
    assert counts["event_gaps"] == 0 and counts["reconnects"] == 0
    if boot_lost:
        assert counts["seq_resets"] == 1 and counts["framing_errors"] + counts["crc_errors"] > 0
        (reset,) = rec.kinds("reset")
        assert reset.data["to_seq"] == 2 and reset.data["from_seq"] >= 21
    else:
        assert counts["seq_resets"] == 0 and rec.kinds("reset") == []
        assert [e.data["reset_reason"] for e in rec.kinds("boot")][-1] == "power-on"


def test_requests_keep_flowing_across_a_restart(sim: SimPort) -> None:
    """A requester loops through kill and restart: every call returns (answer or timeout),
    none hangs, and answers resume by themselves once the simulator is back."""
    outcomes: list[str] = []
    stop = threading.Event()
    with BridgeClient(sim.url, timeout_s=0.15, retries=1, backoff_max_s=0.2).open() as c:

        def loop() -> None:
            while not stop.is_set():
                try:
                    c.ping(b"x")
                    outcomes.append("ok")
                except BridgeTimeout:
                    outcomes.append("timeout")

        th = threading.Thread(target=loop)
        th.start()
        try:
            assert wait_for(lambda: outcomes.count("ok") >= 10)
            sim.kill()
            assert wait_for(lambda: outcomes.count("timeout") >= 2)
            sim.start()
            ok_before = outcomes.count("ok")
            assert wait_for(lambda: outcomes.count("ok") >= ok_before + 10, timeout=6)
        finally:
            stop.set()
            th.join(5)
        assert not th.is_alive()
        assert set(outcomes) == {"ok", "timeout"}
        assert c.counters()["reconnects"] >= 1


def test_unknown_events_and_requests_from_loop_url() -> None:
    """loop:// echoes our own request back: counted as unexpected, the request times out."""
    with BridgeClient("loop://", timeout_s=0.05, retries=1).open() as c:
        with pytest.raises(BridgeTimeout, match="after 2 attempts"):
            c.request(MsgType.PING, b"x")
        assert c.counters()["unexpected"] == 2


def test_second_client_on_a_device_is_refused_clearly(client: BridgeClient) -> None:
    """Two readers on one serial port would steal each other's answers: the port is locked."""
    with pytest.raises(BridgePortError, match="another program"):
        BridgeClient(client.url).open()
    assert client.hello().name == "edge-sim"


def test_socket_url() -> None:
    """A socket:// URL to the same simulator behind socat TCP-LISTEN."""
    with TcpSim() as tcp, BridgeClient(tcp.url).open() as c:
        assert c.hello().name == "edge-sim"
