"""The console reporter: one summary line per metrics interval (used by ``edge-agent run``)."""

from __future__ import annotations

from typing import Any, TextIO

from ..component import Component
from ..telemetry import summary_line


class ConsoleReporter(Component):
    name = "console"

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        self.stream.write(summary_line(snapshot) + "\n")
        self.stream.flush()
