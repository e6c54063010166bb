"""What a flood of hostile command payloads costs the agent, side by side with valid ones.

A local mosquitto and the MQTT test agent (tests/support/mqtt_harness.py) run as real
processes. A sender publishes, as fast as it can, N payloads of one kind on the agent's
command topic and waits for the N replies; we read the agent's CPU time (/proc/<pid>/stat)
before and after. Kinds, in one run: valid ``ping`` commands, payloads nested 60,000 deep
(under the 64 KiB cap), a 5,000-digit number, NaN. Printed: median over --repeat rounds of
CPU ms per payload and of wall time per batch, and the ratio to ``ping``.

    python3 benchmarks/command_flood.py [--count 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.mqtt.link import Incoming, Link, LinkSettings
from edge_agent.mqtt.testing import Mosquitto

ROOT = Path(__file__).resolve().parents[1]

KINDS = {
    "ping (valid)": b'{"id": "p%d"}',
    "nested 60,000 deep": b"[" * 60_000,
    "5,000-digit number": b'{"id": "n%d", "params": {"v": ' + b"9" * 5000 + b"}}",
    "NaN": b'{"id": "x%d", "params": {"v": NaN}}',
}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch(link: Link, got: list[int], cond: threading.Condition, payload: bytes,
          count: int) -> None:
    with cond:
        got[0] = 0
    for i in range(count):
        body = payload % i if b"%d" in payload else payload
        link.publish("edge/dev1/cmd/ping", body, qos=1, correlation=str(i).encode(),
                     response_topic="bench/replies")
        if i % 200 == 199:  # stay under the broker's queue of 1000 per client
            with cond:
                cond.wait_for(lambda n=i - 100: got[0] >= n, timeout=60)
    with cond:
        if not cond.wait_for(lambda: got[0] >= count, timeout=120):
            raise SystemExit(f"only {got[0]} of {count} replies")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker")
        broker.start()
        cfg = Path(tmp) / "a.toml"
        cfg.write_text(f'[device]\nid = "dev1"\nstate_dir = "{tmp}/state"\n[metrics]\n'
                       f'interval_s = 5\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\n'
                       f"port = {broker.port}\ncommand_queue = 1000\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        agent = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/support/mqtt_harness.py"), str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        got = [0]
        cond = threading.Condition()

        def on_reply(m: Incoming) -> None:
            with cond:
                got[0] += 1
                cond.notify_all()

        try:
            assert agent.stdout is not None and "READY" in agent.stdout.readline()
            link = Link(LinkSettings(host="127.0.0.1", port=broker.port, client_id="bench",
                                     clean_start=True, session_expiry_s=0),
                        subscriptions=["bench/replies"], on_message=on_reply, quiet=True)
            link.start(wait=10)
            rows: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in KINDS}
            for _ in range(args.repeat):
                for kind, payload in KINDS.items():  # interleaved: same machine load
                    c0, t0 = cpu_s(agent.pid), time.monotonic()
                    batch(link, got, cond, payload, args.count)
                    rows[kind][0].append((cpu_s(agent.pid) - c0) * 1000 / args.count)
                    rows[kind][1].append(time.monotonic() - t0)
            link.stop()
            alive = agent.poll() is None
        finally:
            agent.terminate()
            agent.wait(10)
            broker.stop()
    base = statistics.median(rows["ping (valid)"][0])
    print(f"{args.count} payloads per batch, median of {args.repeat} rounds; agent alive: {alive}")
    print(f"{'payload':22} {'bytes':>7} {'agent CPU ms/payload':>21} {'vs ping':>8} {'batch s':>8}")
    for kind, (cpu, wall) in rows.items():
        size = len(KINDS[kind] % 0 if b"%d" in KINDS[kind] else KINDS[kind])
        med = statistics.median(cpu)
        print(f"{kind:22} {size:7d} {med:21.3f} {med / base:8.2f} {statistics.median(wall):8.2f}")


if __name__ == "__main__":
    main()
