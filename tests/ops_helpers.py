"""Test helpers for the ops suite: a real mosquitto on a free port, free ports."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def mosquitto(
    tmp: Path, users: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real mosquitto on a free port; with ``users``, a password file and no anonymous."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    # as root mosquitto would drop to user "mosquitto", who cannot read pytest's tmp folders
    conf = [f"listener {port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]
    if users:
        pw = tmp / "mosquitto.passwd"
        pw.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
        conf += ["allow_anonymous false", f"password_file {pw}"]
    else:
        conf.append("allow_anonymous true")
    cfile = tmp / "mosquitto.conf"
    cfile.write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(cfile)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class MjpegCamera:
    """A real network camera: HTTP multipart MJPEG (what IP cameras serve), pausable.

    ``pause()`` stops sending frames on every open connection (the agent's reader blocks in
    read, like a hung camera); ``resume()`` sends again. ``clients`` counts open connections, so
    a test can see the agent release the camera.
    """

    def __init__(self, fps: float = 20.0, size: tuple[int, int] = (160, 120)) -> None:
        import http.server
        import socketserver
        import threading

        import cv2
        import numpy as np

        w, h = size
        img = np.zeros((h, w, 3), np.uint8)
        cv2.putText(img, "7", (w // 3, h - 20), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
        ok, jpg = cv2.imencode(".jpg", img)
        assert ok
        part = (
            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
            + jpg.tobytes()
            + b"\r\n"
        )
        self.running = threading.Event()
        self.running.set()
        self.closed = threading.Event()
        self.clients = 0
        self.frames_sent = 0
        lock = threading.Lock()
        cam = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                with lock:
                    cam.clients += 1
                try:
                    while not cam.closed.is_set():
                        if not cam.running.wait(0.1):
                            continue
                        self.wfile.write(part)
                        self.wfile.flush()
                        cam.frames_sent += 1
                        time.sleep(1.0 / fps)
                except OSError:
                    pass
                finally:
                    with lock:
                        cam.clients -= 1

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def close(self) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()
