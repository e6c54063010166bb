"""Command requests and replies (docs/mqtt.md): validation and idempotency. Pure: no I/O.

A request is JSON ``{"id": "...", "params": {...}, "expires_at": <unix time, optional>}`` on
``<prefix>/cmd/<name>`` or a group command topic. A reply is
``{"id", "command", "device", "ok": true, "result": {...}}`` or
``{"id", "command", "device", "ok": false, "error": {"code", "message"}}``.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..common import strict_json
from .errors import CommandError

Handler = Callable[[dict[str, Any]], dict[str, Any]]

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_EXPIRES_AHEAD_S = 30 * 24 * 3600.0
"""``expires_at`` at most this far ahead (a time in ms, or a clock years off, is refused)."""


class CommandRequest(BaseModel):
    """What a command message must contain."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    params: dict[str, Any] = Field(default_factory=dict)
    expires_at: float | None = Field(
        default=None, allow_inf_nan=False, description="Unix time; later = refused"
    )


class NoParams(BaseModel):
    """Params of commands that take none."""

    model_config = ConfigDict(extra="forbid")


def _first_error(err: ValidationError, whole: str = "payload") -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e.get("loc", ())) or whole
    cause = (e.get("ctx") or {}).get("error") if e.get("type") == "value_error" else None
    return f"{where}: {cause if cause is not None else e.get('msg', 'invalid')}"


def decode_payload(payload: bytes, max_bytes: int) -> Any:
    """The JSON value of a command payload (bounded: size, depth, numbers, duplicate keys)."""
    if len(payload) > max_bytes:
        raise CommandError(
            "too_large", f"command payload is {len(payload)} bytes; the limit is {max_bytes}"
        )
    try:
        return strict_json.loads(payload)
    except strict_json.JSONRefused as exc:
        raise CommandError("invalid_payload", f"command payload refused: {exc}") from None


def parse_request(payload: bytes, max_bytes: int, now: float | None = None) -> CommandRequest:
    """Validate a command payload; raise :class:`CommandError` saying what is wrong."""
    data = decode_payload(payload, max_bytes)
    if not isinstance(data, dict):
        raise CommandError(
            "invalid_payload", f"command payload must be a JSON object, got {type(data).__name__}"
        )
    try:
        req = CommandRequest.model_validate(data)
    except ValidationError as err:
        raise CommandError("invalid_payload", f"invalid command: {_first_error(err)}") from None
    now = time.time() if now is None else now
    exp = req.expires_at
    if exp is not None:
        if not math.isfinite(exp) or exp > now + MAX_EXPIRES_AHEAD_S:
            raise CommandError(
                "invalid_payload",
                f"expires_at {exp:.0f} is more than {MAX_EXPIRES_AHEAD_S / 86400:.0f} days "
                "ahead of the device clock (Unix time in seconds expected)",
            )
        if exp < now:
            raise CommandError(
                "expired",
                f"command {req.id} expired at {exp:.0f}, {now - exp:.0f} s before the device "
                "received it (not run; the sender's and the device's clocks may differ)",
            )
    return req


def expires_at_for(spec: str | None, default_s: float, now: float) -> float | None:
    """The ``expires_at`` a sender puts in a command: ``now + seconds``; None for ``never``.

    ``spec`` is what the user gave (``"30"``, ``"never"``) or None for ``default_s``.
    Raises ValueError naming what is accepted.
    """
    if spec is not None and spec.strip().lower() == "never":
        return None
    try:
        seconds = default_s if spec is None else float(spec)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_EXPIRES_AHEAD_S:
        raise ValueError(
            f"--expires {spec!r}: expected seconds (0 < S <= {MAX_EXPIRES_AHEAD_S:.0f}) or never"
        )
    return round(now + seconds, 3)


def request_id_of(payload: bytes, max_bytes: int) -> str | None:
    """Best effort: the ``id`` of a payload that failed validation, for the error reply."""
    try:
        data = decode_payload(payload, max_bytes)
    except CommandError:
        return None
    rid = data.get("id") if isinstance(data, dict) else None
    if isinstance(rid, str) and re.fullmatch(ID_PATTERN, rid):
        return rid
    return None


def validate_params(model: type[BaseModel], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked by ``model`` (a refusal: ``model.error_code``, default
    ``invalid_params``, naming the field)."""
    try:
        return model.model_validate(params).model_dump(mode="json")
    except ValidationError as err:
        code = getattr(model, "error_code", "invalid_params")
        raise CommandError(code, f"invalid params: {_first_error(err, 'params')}") from None


def ok_reply(req_id: str, command: str, device: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": req_id,
        "command": command,
        "device": device,
        "ok": True,
        "result": result,
        "ts": round(time.time(), 3),
    }


def error_reply(
    req_id: str | None, command: str, device: str, code: str, message: str
) -> dict[str, Any]:
    return {
        "id": req_id,
        "command": command,
        "device": device,
        "ok": False,
        "error": {"code": code, "message": message},
        "ts": round(time.time(), 3),
    }


@dataclass
class Registered:
    handler: Handler
    params_model: type[BaseModel] | None


class Registry:
    """Command name -> handler (+ optional pydantic model for its params)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Registered] = {}

    def add(self, name: str, handler: Handler, params_model: type[BaseModel] | None = None) -> None:
        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"command name {name!r} must match {NAME_PATTERN}")
        self._handlers[name] = Registered(handler, params_model)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def run(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run a command; any failure is a :class:`CommandError`."""
        reg = self._handlers.get(name)
        if reg is None:
            raise CommandError(
                "unknown_command", f"unknown command {name!r}; known: {', '.join(self.names())}"
            )
        if reg.params_model is not None:
            params = validate_params(reg.params_model, params)
        try:
            result = reg.handler(params)
        except CommandError:
            raise
        except Exception as exc:  # a handler bug must not kill the dispatcher
            raise CommandError("failed", f"{name} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, dict):
            raise CommandError("failed", f"{name} returned {type(result).__name__}, not a dict")
        return result


class RecentReplies:
    """The replies to the most recent command ids, bounded by count and age (LRU)."""

    def __init__(self, max_items: int = 256, max_age_s: float = 24 * 3600) -> None:
        self.max_items = max_items
        self.max_age_s = max_age_s
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, req_id: str, now: float) -> dict[str, Any] | None:
        item = self._items.get(req_id)
        if item is None or now - item[0] > self.max_age_s:
            return None
        return item[1]

    def put(self, req_id: str, reply: dict[str, Any], now: float) -> list[str]:
        """Remember a reply; returns the ids that fell out (to forget on disk too)."""
        self._items[req_id] = (now, reply)
        self._items.move_to_end(req_id)
        evicted = []
        while len(self._items) > self.max_items:
            evicted.append(self._items.popitem(last=False)[0])
        for k in [k for k, (t, _) in self._items.items() if now - t > self.max_age_s]:
            del self._items[k]
            evicted.append(k)
        return evicted

    def items(self) -> list[tuple[str, float, dict[str, Any]]]:
        return [(k, t, r) for k, (t, r) in self._items.items()]

    def __len__(self) -> int:
        return len(self._items)
