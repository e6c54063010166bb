"""JSON from outside the process, decoded within bounds. Pure: no I/O.

:func:`loads` refuses, with one :class:`JSONRefused` naming the reason, what ``json.loads``
accepts or chokes on: nesting deeper than ``max_depth`` (checked by a linear scan *before*
parsing, so a payload of 60,000 ``[`` costs a scan, not a ``RecursionError``), ``NaN`` and
``Infinity``, numbers with more than ``max_digits`` digits (and floats that overflow to
infinity), duplicate keys in an object, and bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_DIGITS = 40
_SPECIAL = re.compile(r'["\\\[\]{}]')


class JSONRefused(ValueError):
    """The text is not JSON this process accepts; the message says why."""


def depth_exceeds(text: str, max_depth: int) -> bool:
    """True if arrays/objects nest deeper than ``max_depth`` anywhere in ``text``.

    Linear in the number of quotes, backslashes and brackets; brackets inside strings do
    not count. Stops at the first level too deep.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False  # cannot nest deeper than the number of openers
    depth = 0
    in_string = False
    escaped_at = -2
    for m in _SPECIAL.finditer(text):
        ch, pos = m.group(), m.start()
        if in_string:
            if pos == escaped_at + 1:
                continue  # this character is escaped
            if ch == "\\":
                escaped_at = pos
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a number JSON allows")


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, max_digits: int = MAX_DIGITS) -> Any:
    """Decode JSON; raise :class:`JSONRefused` for anything outside the bounds above."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRefused(f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    if depth_exceeds(text, max_depth):
        raise JSONRefused(f"nested deeper than {max_depth} levels")

    def parse_int(s: str) -> int:
        digits = len(s.lstrip("-"))
        if digits > max_digits:
            raise JSONRefused(f"a number has {digits} digits; at most {max_digits}")
        return int(s)

    def parse_float(s: str) -> float:
        if len(s) > max_digits + 8:
            raise JSONRefused(f"a number is {len(s)} characters long; at most {max_digits + 8}")
        v = float(s)
        if not math.isfinite(v):
            raise JSONRefused(f"the number {s} is out of range")
        return v

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise JSONRefused(f"duplicate key {k[:40]!r}")
            out[k] = v
        return out

    try:
        return json.loads(
            text,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=_no_constant,
            object_pairs_hook=pairs,
        )
    except JSONRefused:
        raise
    except RecursionError:  # not reachable after the depth scan; never let it escape
        raise JSONRefused(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JSONRefused(f"not JSON: {exc}") from None
