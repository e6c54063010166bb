"""Logging for the agent and the CLI: human lines or JSON lines, journald-aware, never secrets.

- ``human`` (default): ``2026-01-02 10:11:12,345 INFO edge_agent.mqtt: connected``. Under
  journald (``$JOURNAL_STREAM`` names our stderr) the timestamp is dropped (journald adds its
  own) and each line starts with the syslog priority (``<6>``), so ``journalctl -p warning``
  works.
- ``json``: one object per line: ``ts`` (omitted under journald), ``level``, ``logger``, ``msg``,
  ``exc`` when there is a traceback.
- Every handler carries a :class:`RedactFilter`: any registered secret (broker password, ...)
  is replaced by ``***`` in the final text, whatever logged it.
- :data:`RECENT` keeps the last lines in memory for ``edge-agent diag bundle`` (through the
  control socket).

The command line (``edge-agent --log-format json --log-level DEBUG ...``) wins over the config
file's ``[logging]`` section.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..config import Config

FORMATS = ("human", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RECENT_LINES = 1000

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def under_journald(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald stream systemd gave us ($JOURNAL_STREAM=dev:ino)."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        dev, ino = (int(x) for x in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class HumanFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt if journald else "%(asctime)s " + fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.journald:
            prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
            # journald reads the prefix of each line; keep continuation lines at the same level
            text = "\n".join(f"<{prio}>{line}" for line in text.splitlines())
        return text


class JsonFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {}
        if not self.journald:
            t = time.gmtime(record.created)
            ms = int(record.msecs)
            obj["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms:03d}Z"
        obj["level"] = record.levelname
        obj["logger"] = record.name
        obj["msg"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


class RedactFilter(logging.Filter):
    """Replaces every registered secret in the formatted record with ``***``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret that contains another is removed whole
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        msg = record.getMessage()
        clean = self.scrub(msg)
        exc_text = None
        if record.exc_info:
            exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
        if clean != msg or exc_text is not None:
            record.msg, record.args = clean, None
            if exc_text is not None:
                record.exc_info, record.exc_text = None, None
                record.msg = f"{clean}\n{exc_text}"
        return True


class RecentLogs(logging.Handler):
    """The last ``maxlen`` formatted lines, for support bundles."""

    def __init__(self, maxlen: int = RECENT_LINES) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=maxlen)
        self._mutex = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # pragma: no cover - a broken record must not break logging
            return
        with self._mutex:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._mutex:
            return list(self._lines)


REDACT = RedactFilter()
RECENT = RecentLogs()
_cli: dict[str, str] = {}
_handler: logging.Handler | None = None


def configure(
    fmt: str = "human",
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """(Re)configure the root logger; safe to call again (SIGHUP applies a new level/format)."""
    global _handler
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    out = stream or sys.stderr
    journald = under_journald(out, environ)
    formatter: logging.Formatter = (
        JsonFormatter(journald) if fmt == "json" else HumanFormatter(journald)
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(out)
    _handler.setFormatter(formatter)
    _handler.addFilter(REDACT)
    root.addHandler(_handler)
    if RECENT not in root.handlers:
        RECENT.setFormatter(JsonFormatter(journald=False))
        RECENT.addFilter(REDACT)
        root.addHandler(RECENT)
    root.setLevel(level)


def retarget(stream: TextIO) -> None:
    """Point the log handler at ``stream`` (the stderr relay gives it the real stderr)."""
    if isinstance(_handler, logging.StreamHandler):
        _handler.setStream(stream)


def set_cli_overrides(fmt: str | None, level: str | None) -> None:
    """Remember the command line's choice (it wins over the config file) and apply it now."""
    _cli.clear()
    if fmt:
        _cli["format"] = fmt
    if level:
        _cli["level"] = level.upper()
    configure(_cli.get("format", "human"), _cli.get("level", "INFO"))


def secrets_of(cfg: Config) -> list[str]:
    """The secret values a config carries: broker password and the password file's content."""
    out: list[str] = []
    if cfg.mqtt.password is not None:
        out.append(cfg.mqtt.password.get_secret_value())
    if cfg.mqtt.password_file is not None:
        try:
            out.append(cfg.mqtt.password_file.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            pass
    return [s for s in out if s]


def apply_config(cfg: Config) -> None:
    """Configure from ``cfg.logging`` (command line overrides win) and register its secrets."""
    REDACT.set_secrets(secrets_of(cfg))
    configure(_cli.get("format", cfg.logging.format), _cli.get("level", cfg.logging.level))
