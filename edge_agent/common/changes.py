"""Which keys differ between two configurations (pydantic models), by dotted name. Pure.

Secrets (``SecretStr``) are compared by value and never returned as values: only key names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def changed_keys(old: BaseModel, new: BaseModel) -> list[str]:
    """The dotted keys (``mqtt.keepalive_s``) whose values differ, sorted."""
    a = _flatten(old.model_dump(mode="python"))
    b = _flatten(new.model_dump(mode="python"))
    return [k for k in sorted(set(a) | set(b)) if _plain(a.get(k)) != _plain(b.get(k))]
