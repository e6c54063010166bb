"""The floor of any HTTP server on this machine, for ``benchmarks/http.py``: a bare protocol on
uvloop (asyncio without it), in its own process, that answers every request with the decode and
run of its body and the result's JSON: no HTTP parser beyond the Content-Length, no checks, no
admission, no agent around it (no pipeline, no other threads), the interpreter on the process's
tuning (``tune_process``: OpenCV on one thread, a 1 ms GIL switch interval) like the agent's.

What it costs over calling the Runner directly is the loopback, the two wake-ups and the caches
a request finds cold after the other process ran: a server in Python can only add to it.

    python3 benchmarks/http_floor.py PORT [MODEL]      (prints "ready" once it listens)
"""

from __future__ import annotations

import sys
from pathlib import Path

# a sibling is named http.py: keep this folder off the path, or it hides the stdlib's http
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.agent.pipeline import tune_process  # noqa: E402
from edge_agent.api.bodies import decode_image  # noqa: E402
from edge_agent.inference import Runner  # noqa: E402

MODEL = ROOT / "models" / "blazeface_int8.tflite"


class Bare(asyncio.Protocol):
    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
            result, _ = self.runner.run(decode_image(body))
            out = json.dumps(result.to_json(), separators=(",", ":")).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(out), out))


async def serve(port: int, model: Path) -> None:
    runner = Runner.open(model, threads=1)
    server = await asyncio.get_running_loop().create_server(lambda: Bare(runner), "127.0.0.1",
                                                            port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    tune_process()
    port, model = int(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else MODEL
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port, model))
    else:
        uvloop.run(serve(port, model))


if __name__ == "__main__":
    main()
