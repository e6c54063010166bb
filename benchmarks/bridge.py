"""Firmware bridge benchmark: ping round trip over a real pty to the C simulator, frames/s.

    python3 benchmarks/bridge.py [--pings 500]

Side by side in one run (medians): the pure codec (encode + deframe, no I/O), a ping over TCP
(socat TCP-LISTEN -> simulator, pyserial socket://) and a ping over the pty (socat PTY ->
simulator), then throughput with one and with four requesting threads.
Needs make, a C compiler and socat (scripts/test installs them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge import BridgeClient, Deframer, Frame, encode_frame
from firmware_bridge.testing import SimPort, TcpSim


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def codec_us(n: int, size: int) -> float:
    d = Deframer()
    body = bytes(range(size))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        d.feed(encode_frame(Frame(0x02, i & 0xFFFF, body)))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def rtts_ms(client: BridgeClient, n: int, size: int) -> list[float]:
    payload = bytes(i & 0xFF for i in range(size))
    for _ in range(20):
        client.ping(payload)  # warm up
    return [client.ping(payload) * 1000 for _ in range(n)]


def throughput(client: BridgeClient, threads: int, seconds: float) -> float:
    """Frames per second (request + response) with ``threads`` requesters in parallel."""
    count = [0] * threads
    stop = time.monotonic() + seconds

    def work(k: int) -> None:
        while time.monotonic() < stop:
            client.ping(b"")
            count[k] += 2

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pings", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    n = args.pings
    print(f"firmware bridge benchmark: {n} pings per row, medians; python {sys.version.split()[0]}")
    codec = {size: codec_us(5000, size) for size in (0, 240)}
    with tempfile.TemporaryDirectory() as tmp:
        with TcpSim() as server, BridgeClient(server.url).open() as tcp:
            tcp_rtt = {size: rtts_ms(tcp, n, size) for size in (0, 240)}
        with SimPort(Path(tmp)) as sim, BridgeClient(sim.url).open() as pty:
            pty_rtt = {size: rtts_ms(pty, n, size) for size in (0, 240)}
            fps1 = throughput(pty, 1, args.seconds)
            fps4 = throughput(pty, 4, args.seconds)
            counters = pty.counters()
    print(f"{'path':<28}{'payload':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for size in (0, 240):
        print(f"{'codec only (encode+deframe)':<28}{size:>8}{codec[size] / 1000:>10.4f}{'':>10}")
        for name, r in (("ping over TCP (socket://)", tcp_rtt), ("ping over pty (socat)", pty_rtt)):
            print(
                f"{name:<28}{size:>8}{statistics.median(r[size]):>10.3f}{pct(r[size], 0.99):>10.3f}"
            )
    p50 = statistics.median(pty_rtt[0])
    print(
        f"ratios (0 B): pty/TCP p50 {p50 / statistics.median(tcp_rtt[0]):.2f}x, "
        f"pty ping/codec {p50 * 1000 / codec[0]:.0f}x, "
        f"240 B/0 B over pty {statistics.median(pty_rtt[240]) / p50:.2f}x"
    )
    print(
        f"throughput over pty: {fps1:,.0f} frames/s with 1 requester, {fps4:,.0f} frames/s with 4 "
        f"({fps4 / fps1:.2f}x); timeouts {counters['timeouts']}, "
        f"crc errors {counters['crc_errors']}"
    )


if __name__ == "__main__":
    main()
