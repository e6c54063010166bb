"""The device's HTTP API, measured side by side in one run (issue 15).

1. ``POST /v1/infer`` requests/s and client-side p50/p99 latency at concurrency 1 and 4 against
   calling the Runner directly on the same JPEG bytes (decode + run: what a local program would
   do itself), with the same number of interpreters (``http.infer_workers``, 1 by default; the
   direct callers share as many Runners behind a queue). Goal: >= 0.85 of direct at conc 1.
   Two clients, side by side: :class:`LeanClient` (the goal's figure), a keep-alive socket that
   sends a request built once and reads the reply by its Content-Length (~0.05 ms a request:
   what a client in C or Go, or curl, costs), so the figure is the server's and the loopback's;
   and Python's ``http.client``, which spends ~0.5 ms of Python a request of its own (building
   the request, parsing the reply's headers with the email package) in the timed loop. And
   beside them the floor (``benchmarks/http_floor.py``): a bare protocol in its own process that
   answers with the decode, run and JSON alone, what any HTTP server costs on the machine (the
   loopback, two wake-ups, caches found cold), and the API's figure over it.
2. Pipeline fps while the API is under that load divided by idle fps, read from the agent's own
   ``/metrics`` (``edge_agent_frames_processed_total`` over a window), for a camera the
   pipeline keeps up with (the demo clip at its own rate) and one it cannot (a synthetic camera
   at 1000 fps: the pipeline runs flat out), the latter with the duty cap (``http.infer_duty``,
   which holds the API while the pipeline drops stale frames) and without it (0), idle and
   loaded windows alternating, with the API's req/s meanwhile. Goal >= 0.9 on 2 cores, 1
   inference thread each. The requests the cap held (``edge_agent_http_infer_throttled_total``)
   are printed for every agent: the demo clip's (the concurrency 1 and 4 figures) must be 0.
3. RSS added by the HTTP server: the same agent with ``http.enabled`` false and true (after
   warm-up, and after the load), medians of a few samples.

    python3 benchmarks/http.py [--seconds 8] [--requests 400] [--rounds 4] [--duty 0.1]
                               [--model models/mobilenet_v2_int8.tflite]
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named http.py: keep its folder off the path, or it hides the stdlib's http
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from edge_agent.api.bodies import decode_image  # noqa: E402
from edge_agent.inference import Runner  # noqa: E402

PHOTO = (ROOT / "tests" / "data" / "astronaut.jpg").read_bytes()
DEFAULT_MODEL = ROOT / "models" / "blazeface_int8.tflite"  # the agent's factory model
MODEL = DEFAULT_MODEL  # --model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Agent:
    def __init__(self, tmp: Path, name: str, camera: str, fps: float | None, http: bool,
                 workers: int = 1, nice: int = 5, duty: float | None = None,
                 **http_keys: Any) -> None:
        self.port = free_port()
        cfg = tmp / f"{name}.toml"
        lines = ["[device]", f'id = "bench-{name}"', f'state_dir = "{tmp / name}"',
                 "[camera]", f'source = "{camera}"']
        if fps:
            lines.append(f"fps = {fps}")
        if MODEL != DEFAULT_MODEL:
            lines += ["[model]", f'path = "{MODEL}"']
        lines += ["[metrics]", "interval_s = 1", "[http]", f"enabled = {str(http).lower()}",
                  f"port = {self.port}", f"infer_workers = {workers}", "max_infer = 16",
                  f"nice = {nice}"]
        if duty is not None:
            lines.append(f"infer_duty = {duty}")
        lines += [f"{k} = {v}" for k, v in http_keys.items()]
        cfg.write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_AGENT_")}
        env["PYTHONPATH"] = str(ROOT)
        self.out = tmp / f"{name}.out"
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config",
                                      str(cfg)], stdout=self.out.open("wb"),
                                     stderr=(tmp / f"{name}.log").open("wb"), env=env, cwd=ROOT)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # running: 3 console lines (one per second)
            if self.out.read_text(errors="replace").count("fps in") >= 3:
                return
            time.sleep(0.1)
        raise RuntimeError(f"agent {name} did not start: {(tmp / f'{name}.log').read_text()}")

    def rss_mb(self, samples: int = 5) -> float:
        out = []
        for _ in range(samples):
            out.append(self.ps.memory_info().rss / 2**20)
            time.sleep(0.2)
        return statistics.median(out)

    def metric(self, name: str, **labels: str) -> float:
        _, body = request(self.port, "GET", "/metrics")
        for fam in text_string_to_metric_families(body.decode()):
            if fam.name == name:
                for sample in fam.samples:
                    if all(sample.labels.get(k) == v for k, v in labels.items()):
                        return float(sample.value)
        raise RuntimeError(f"no {name} in /metrics")

    def processed(self) -> float:
        return self.metric("edge_agent_frames_processed")

    def throttled(self) -> float:
        return self.metric("edge_agent_http_infer_throttled")

    def fps(self, seconds: float) -> float:
        a, t0 = self.processed(), time.monotonic()
        time.sleep(seconds)
        return (self.processed() - a) / (time.monotonic() - t0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request(port: int, method: str, path: str, body: bytes | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request(method, path, body=body,
                  headers={"Content-Type": "image/jpeg"} if body else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if own:
            c.close()


class LeanClient:
    """A kept-alive HTTP/1.1 connection that sends one request, built once, and reads each reply
    by its Content-Length (no chunked replies): a client that costs next to nothing, so the
    time measured is the server's and the loopback's."""

    def __init__(self, port: int, path: str, body: bytes, content_type: str) -> None:
        self.request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
                        ).encode() + body
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self) -> tuple[int, bytes]:
        """Status and body of one request."""
        self.sock.sendall(self.request)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        head, rest = buf[:end].lower(), buf[end + 4:]
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"a reply without Content-Length: {head[:200]!r}")
        length = int(head[at + 17:].split(b"\r\n", 1)[0])
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return int(head[9:12]), rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        return chunk


def load(call: Any, concurrency: int, total: int) -> dict[str, float]:
    """``total`` calls from ``concurrency`` threads (each its own connection); req/s, p50/p99."""
    return summary(*_timed(call, concurrency, total, {}))


def _timed(call: Any, concurrency: int, total: int,
           states: dict[int, dict[str, Any]]) -> tuple[list[float], float]:
    """Latencies and wall time of ``total`` calls from ``concurrency`` threads; thread i keeps
    ``states[i]`` (its connection) from one batch to the next."""
    lat: list[float] = []
    lock = threading.Lock()
    left = [total]

    def worker(i: int) -> None:
        state = states.setdefault(i, {})
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            t = time.perf_counter()
            call(state)
            d = time.perf_counter() - t
            with lock:
                lat.append(d)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, time.perf_counter() - t0


def summary(lat: list[float], wall: float) -> dict[str, float]:
    lat = sorted(lat)
    return {"rps": len(lat) / wall, "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000}


def side_by_side(calls: dict[str, Any], concurrency: int, total: int,
                 rounds: int = 10) -> dict[str, dict[str, float]]:
    """Each of ``calls`` ``total`` times, in ``rounds`` alternating batches, so that a change in
    the machine's load (other processes) falls on every side alike."""
    per = max(1, total // rounds)
    lat: dict[str, list[float]] = {k: [] for k in calls}
    wall = dict.fromkeys(calls, 0.0)
    states: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            got, w = _timed(call, concurrency, per, states[k])
            lat[k] += got
            wall[k] += w
    return {k: summary(lat[k], wall[k]) for k in calls}


def api_call(port: int) -> Any:
    def call(state: dict[str, Any]) -> None:
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        status, _ = request(port, "POST", "/v1/infer", PHOTO, conn=conn)
        if status != 200:
            raise RuntimeError(f"/v1/infer answered {status}")
    return call


def lean_call(port: int) -> Any:
    def call(state: dict[str, Any]) -> None:
        client = state.get("lean")
        if client is None:
            client = state["lean"] = LeanClient(port, "/v1/infer", PHOTO, "image/jpeg")
        status, body = client.call()
        if status != 200 or not body.startswith(b"{"):
            raise RuntimeError(f"/v1/infer answered {status}: {body[:200]!r}")
    return call


def direct_call(workers: int) -> Any:
    base = Runner.open(MODEL, threads=1)
    pool: queue.Queue[Any] = queue.Queue()
    for _ in range(workers):
        pool.put(base.clone())

    def call(state: dict[str, Any]) -> None:
        image = decode_image(PHOTO)
        r = pool.get()
        try:
            r.run(image)
        finally:
            pool.put(r)
    return call


class Floor:
    """``benchmarks/http_floor.py`` running on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "http_floor.py"),
                                      str(self.port), str(MODEL)], stdout=subprocess.PIPE,
                                     cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            raise RuntimeError(f"benchmarks/http_floor.py did not start: {line!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def fps_under_load(agent: Agent, seconds: float) -> tuple[float, float]:
    """The pipeline's fps while 4 clients keep /v1/infer busy, and the API's req/s meanwhile."""
    stop = threading.Event()
    api = api_call(agent.port)
    done = [0]

    def background() -> None:
        while not stop.is_set():
            load(api, 4, 4)
            done[0] += 4

    bg = threading.Thread(target=background)
    bg.start()
    try:
        time.sleep(1)
        n0, t0 = done[0], time.monotonic()
        fps = agent.fps(seconds)
        return fps, (done[0] - n0) / (time.monotonic() - t0)
    finally:
        stop.set()
        bg.join()


def flat_out(tmp: Path, name: str, args: Any, duty: float | None) -> dict[str, Any]:
    """Idle and loaded windows alternating (``args.rounds`` pairs) on a synthetic camera at
    1000 fps: per-pair ratios, the API's req/s under load, the requests the cap held."""
    agent = Agent(tmp, name, "synthetic", 1000, True, args.workers, args.nice, duty)
    try:
        ratios, idle, busy, rps = [], [], [], []
        for _ in range(args.rounds):
            idle.append(agent.fps(args.seconds / 2))
            f, r = fps_under_load(agent, args.seconds / 2)
            busy.append(f)
            rps.append(r)
            ratios.append(f / idle[-1])
        return {"idle": statistics.median(idle), "busy": statistics.median(busy),
                "ratio": statistics.median(ratios), "rps": statistics.median(rps),
                "throttled": agent.throttled()}
    finally:
        agent.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="fps measurement window")
    ap.add_argument("--requests", type=int, default=400,
                    help="/v1/infer calls per client and concurrency, in 10 alternating batches")
    ap.add_argument("--workers", type=int, default=1, help="http.infer_workers")
    ap.add_argument("--nice", type=int, default=5, help="http.nice (the default: 5)")
    ap.add_argument("--rounds", type=int, default=4, help="idle/loaded pairs, flat out")
    ap.add_argument("--duty", type=float, default=None,
                    help="http.infer_duty of the capped flat-out agent (default: the config's)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                    help="the model of the agent, the direct call and the floor (default: the "
                    "factory BlazeFace, ~3 ms a call here: the fixed cost of a request weighs "
                    "most on it)")
    args = ap.parse_args()
    global MODEL
    MODEL = args.model.resolve()
    import importlib.util

    native = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m)]
    print(f"# uvicorn on {' + '.join(native) if native else 'asyncio + h11'} "
          "(uvloop/httptools are used when installed: pip install '.[http-native]')")
    print(f"# {MODEL.name}, {os.cpu_count()} cores, {args.requests} requests per run, "
          f"{args.workers} API interpreter(s), 1 thread each, http.nice = {args.nice}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # 1. throughput and latency, with the demo clip running in the pipeline meanwhile
        agent = Agent(tmp, "demo", "demo", None, True, args.workers, args.nice)
        floor = Floor()
        try:
            idle_demo = agent.fps(args.seconds)
            calls = {"direct": direct_call(args.workers), "lean": lean_call(agent.port),
                     "http.client": api_call(agent.port), "floor": lean_call(floor.port)}
            for f in calls.values():  # warm-up
                load(f, 1, 10)
            rows = [(conc, side_by_side(calls, conc, args.requests)) for conc in (1, 4)]
            demo_throttled = agent.throttled()
            busy_demo, _ = fps_under_load(agent, args.seconds)
            rss_http_after = agent.rss_mb()
        finally:
            agent.stop()
            floor.stop()
        print("\n/v1/infer vs the Runner called directly (decode + run of the same JPEG; "
              "alternating batches). API clients: lean = a kept-alive socket sending a prebuilt "
              "request (the server's and the loopback's time: the goal's figure); http.client = "
              "Python's, whose own ~0.5 ms a request is in its figure")
        print(f"{'conc':>4} {'direct req/s':>13} {'client':>12} {'API req/s':>10} {'ratio':>6} "
              f"{'direct p50/p99 ms':>18} {'API p50/p99 ms':>15}")
        for conc, got in rows:
            d_ = got["direct"]
            for client in ("lean", "http.client", "floor"):
                a_ = got[client]
                print(f"{conc:>4} {d_['rps']:>13.1f} {client:>12} {a_['rps']:>10.1f} "
                      f"{a_['rps'] / d_['rps']:>6.2f} {d_['p50_ms']:>8.2f}/{d_['p99_ms']:<9.2f} "
                      f"{a_['p50_ms']:>6.2f}/{a_['p99_ms']:.2f}")
        print("  floor = benchmarks/http_floor.py, a bare protocol in its own process answering "
              "with the decode, run and JSON alone (no parser, checks or agent): what any HTTP "
              "server costs here. The agent's API over the floor, lean client:")
        for conc, got in rows:
            print(f"  conc {conc}: {got['lean']['rps'] / got['floor']['rps']:.2f} "
                  f"(p50 {got['lean']['p50_ms'] - got['floor']['p50_ms']:+.2f} ms)")
        print(f"  requests held by the duty cap meanwhile: {demo_throttled:.0f} (the demo clip "
              "keeps up: the cap must not apply)")
        # 2. a pipeline running flat out, with the duty cap and without
        from edge_agent.config import HTTPConfig

        duty = args.duty if args.duty is not None else HTTPConfig().infer_duty
        capped = flat_out(tmp, "capped", args, duty)
        uncapped = flat_out(tmp, "uncapped", args, 0)
        print("\npipeline fps under /v1/infer load (4 clients) / idle fps; medians of "
              f"{args.rounds} alternating idle/loaded pairs when flat out")
        print(f"  demo clip (paced):            {idle_demo:6.1f} -> {busy_demo:6.1f}  "
              f"ratio {busy_demo / idle_demo:.2f}")
        for label, r in ((f"flat out, infer_duty {duty:g}:", capped),
                         ("flat out, no cap:", uncapped)):
            print(f"  {label:29s} {r['idle']:6.1f} -> {r['busy']:6.1f}  ratio {r['ratio']:.2f}"
                  f"   API {r['rps']:6.1f} req/s, {r['throttled']:.0f} held by the cap")
        # 3. RSS
        rss = {}
        for http_on in (False, True):
            a = Agent(tmp, f"rss{int(http_on)}", "demo", None, http_on, args.workers)
            try:
                rss[http_on] = a.rss_mb()
            finally:
                a.stop()
        print("\nRSS of the agent on the demo clip (median of 5 samples)")
        print(f"  http off {rss[False]:.1f} MB, on {rss[True]:.1f} MB: "
              f"+{rss[True] - rss[False]:.1f} MB idle; +{rss_http_after - rss[False]:.1f} MB "
              "after the load above")


if __name__ == "__main__":
    main()
