"""An ASGI app served by uvicorn on its own thread (the agent's HTTP API, ``fleet serve``).

The socket is bound here, before the thread starts, so a port in use or a bad address is an
``OSError`` in the caller (with ``port=0`` the kernel picks a port: :attr:`ServerThread.port`).
uvicorn's logging setup is left alone (the agent configured logging already), it installs no
signal handlers off the main thread, and :meth:`ServerThread.stop` is bounded: open
connections (a live stream) get ``graceful_s`` to finish, then are cancelled. ``nice``: the
event loop's thread runs that much lower in priority (the device's API below its pipeline).
``loop``/``http`` "auto": uvloop and httptools when installed (in the base install on x86_64
and aarch64; C: ~0.4 ms less per request than asyncio + h11), else the pure-Python asyncio
and h11.

An idle server sleeps: uvicorn's own main loop wakes ten times a second to look at its exit
flag (about 3 ms of CPU a second on the agent's 2-core reference machine, 0.2 ms per frame at
15 fps); :class:`_SleepingServer` wakes once a second, to refresh the ``Date`` header as
uvicorn does, and at once when :meth:`ServerThread.stop` asks it to exit.

One write per reply: uvicorn writes a reply's head and its body to the socket apart (two
``send`` system calls, two TCP segments, the client woken twice). :class:`_OneWrite` holds a
short write until the next, and sends the two as one; a write of 64 KiB or more goes out at
once, so flow control (a slow reader) works as before. ``protocol``: a function of that
protocol class giving the class to serve with (a subclass: the agent's API answers
``POST /v1/infer`` in its own, :mod:`edge_agent.api.infer_protocol`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


def lower_thread_priority(by: int) -> bool:
    """Set the calling thread's nice value to the process's plus ``by`` (Linux: per thread), so
    that under CPU contention the scheduler favours the agent's other threads (the camera's
    pipeline); False where the platform cannot (any user may lower a priority, only raising
    needs a right). Relative to the process (its main thread), not to the calling thread: a
    thread started by an already lowered one (the API's pool, by uvicorn's loop) inherits that
    nice and would otherwise sink by ``by`` twice."""
    if by <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        target = min(os.getpriority(os.PRIO_PROCESS, os.getpid()) + by, 19)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError:
        return False
    return True


COALESCE_BYTES = 65536
"""A write shorter than this is held for the next one (or the end of the loop's turn)."""


class _OneWrite:
    """A transport that sends a reply's head with its body (module doc): a short write is held
    until the next one, which goes out joined to it at once, or until the end of this turn of
    the event loop; everything else is the transport's own."""

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif len(data) < COALESCE_BYTES:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def write_now(self, data: bytes) -> None:
        """``data`` at once, joined to a held write if any (a reply written whole)."""
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # the peer went: nothing to send it
                self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return len(self._held or b"") + int(self._transport.get_write_buffer_size())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _one_write_protocol(http: str) -> type[Any]:
    """uvicorn's HTTP protocol class for ``http`` ("auto", "httptools", "h11"), its
    connections' transports wrapped in :class:`_OneWrite`."""
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    base: type[Any] = import_from_string(HTTP_PROTOCOLS[http])

    class OneWriteProtocol(base):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_OneWrite(transport, self.loop))

    OneWriteProtocol.__name__ = OneWriteProtocol.__qualname__ = f"OneWrite{base.__name__}"
    return OneWriteProtocol


def _sleeping_server(config: Any) -> Any:
    """A uvicorn Server whose main loop sleeps until woken (module doc)."""
    import uvicorn

    class _SleepingServer(uvicorn.Server):
        _loop: asyncio.AbstractEventLoop | None = None
        _wake: asyncio.Event | None = None

        async def main_loop(self) -> None:
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            counter = 0
            while not await self.on_tick(counter):  # counter % 10 == 0: the Date header
                counter = (counter + 10) % 864000
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

        def wake(self) -> None:
            loop, event = self._loop, self._wake
            if loop is not None and event is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # the loop closed meanwhile: it is exiting anyway
                    pass

    return _SleepingServer(config)


class ServerThread:
    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        name: str = "http",
        certfile: str | None = None,
        keyfile: str | None = None,
        limit_concurrency: int | None = None,
        graceful_s: float = 0.5,
        nice: int = 0,
        loop: str = "auto",
        http: str = "auto",
        protocol: Callable[[type[Any]], type[Any]] | None = None,
    ) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
        # without it a kept-alive connection's replies wait ~40 ms (Nagle against delayed ACKs)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(False)
        self.sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        http_class = _one_write_protocol(http)
        if protocol is not None:
            http_class = protocol(http_class)
        self.server = _sleeping_server(uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            ssl_certfile=certfile, ssl_keyfile=keyfile, limit_concurrency=limit_concurrency,
            timeout_graceful_shutdown=graceful_s,  # type: ignore[arg-type]  # a float works
            loop=loop, http=http_class, ws="none",
            server_header=False,
        ))
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None
        self.nice = nice

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # SystemExit from uvicorn's startup included
            self.error = exc

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; RuntimeError when uvicorn does not come up within ``timeout``."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop(0.5)
                raise RuntimeError(f"the HTTP server did not start ({self.error!r})"
                                   if self.error else "the HTTP server did not start in time")
            time.sleep(0.01)

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask uvicorn to exit; True when its thread ended within ``timeout``."""
        self.server.should_exit = True
        self.server.wake()
        if self.thread.is_alive():
            self.thread.join(timeout)
        alive = self.thread.is_alive()
        if not alive:
            self.sock.close()
        return not alive

    @property
    def scheme(self) -> str:
        return "https" if self.server.config.ssl_certfile else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"
