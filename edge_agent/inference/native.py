"""Keep the TFLite runtime's own C++ log lines off the terminal.

The runtimes print to file descriptor 2 directly (``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.``, and on failures an ``ERROR:`` line that repeats what the Python exception
says). The CLI promises one error line, so model loading runs inside
:func:`quiet_native_stderr`: fd 2 goes to a temporary file, and afterwards ``INFO`` lines go to
the debug log and anything else to the ``edge_agent.inference`` logger, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

log = logging.getLogger("edge_agent.inference")

_lock = threading.RLock()
_depth = 0
MAX_CAPTURE_BYTES = 64 * 1024


class NativeLog:
    """What the runtime printed while captured (filled when the block ends)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def text(self) -> str:
        return " ".join(line.strip() for line in self.lines if line.strip())


@contextlib.contextmanager
def quiet_native_stderr(*, relay: bool = True, only_runtime: bool = False) -> Iterator[NativeLog]:
    """Capture fd 2 for the duration of the block (re-entrant, one at a time per process).

    ``relay``: after the block, log the runtime's lines (INFO at debug level, the rest as
    warnings). Pass ``False`` when the caller turns the text into an exception message itself
    (they then go to the debug log). Lines that are not the runtime's are written back, unless
    ``only_runtime`` says everything printed in the block is the runtime's (importing it).
    """
    global _depth
    captured = NativeLog()
    with _lock:
        if _depth > 0:  # an outer block already captures
            yield captured
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (daemonised without stderr): nothing to capture
            yield captured
            return
        tmp = tempfile.TemporaryFile()
        _depth += 1
        relay_now = relay
        try:
            os.dup2(tmp.fileno(), 2)
            try:
                yield captured
            except BaseException:
                relay_now = False
                raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _depth -= 1
            tmp.seek(0)
            data = tmp.read(MAX_CAPTURE_BYTES)
            tmp.close()
            captured.lines = data.decode("utf-8", "replace").splitlines()
            _relay(captured.lines, relay_now and not only_runtime, keep_foreign=not only_runtime)


_RUNTIME_PREFIXES = ("INFO:", "WARNING:", "ERROR:", "VERBOSE:", "I0000 ", "W0000 ", "E0000 ")


def _relay(lines: list[str], relay: bool, *, keep_foreign: bool = True) -> None:
    """Runtime lines go to the log (INFO at debug level); anything else written to fd 2 in the
    meantime (another thread's output) is written back to stderr unchanged."""
    others = []
    for line in lines:
        if not line.strip():
            continue
        if keep_foreign and not line.startswith(_RUNTIME_PREFIXES):
            others.append(line)
        elif not relay or line.startswith(("INFO:", "I0000 ")):
            log.debug("runtime: %s", line)
        else:
            log.warning("runtime: %s", line)
    if others:
        try:
            os.write(2, ("\n".join(others) + "\n").encode("utf-8", "replace"))
        except OSError:
            pass
