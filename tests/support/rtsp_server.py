"""A real RTSP camera for the tests: GStreamer's RTSP server (gst-rtsp-server) on loopback.

Run with the system Python, which has the GObject bindings (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base/-good)::

    /usr/bin/python3 tests/support/rtsp_server.py PORT

It serves ``rtsp://127.0.0.1:PORT/cam``: a live test pattern, MJPEG over RTP (RFC 2435),
160x120 at 15 fps, and prints ``ready`` on stdout once it listens. SIGUSR1 stalls the stream
(the RTP packets stop, the RTSP session stays up: a hung camera), SIGUSR2 resumes it, SIGTERM
ends the server (a camera that reboots is a new server process on the same port).
"""

from __future__ import annotations

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball"
    " ! video/x-raw,format=I420,width=160,height=120,framerate=15/1"
    " ! valve name=gate drop=false ! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=96 )"
)


def main(port: int) -> None:
    Gst.init(None)
    loop = GLib.MainLoop()
    gates: list[Gst.Element] = []
    stalled = [False]

    def on_configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        gate = media.get_element().get_by_name("gate")
        gate.set_property("drop", stalled[0])
        gates.append(gate)

    def stop(*_args: object) -> bool:
        loop.quit()
        return False

    def set_stalled(value: bool) -> bool:
        stalled[0] = value
        for gate in gates:
            gate.set_property("drop", value)
        return True

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, set_stalled, True)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR2, set_stalled, False)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop, None)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
