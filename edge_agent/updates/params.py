"""Params of the ``update`` command, as a pydantic model (validated before the handler runs).

Every identifier becomes a path component on the device (``staging/<deployment>``,
``versions/<model>/<version>-...``), so each must be a safe single name (:mod:`..common.names`)
of 1-64 of ``A-Z a-z 0-9 _ . + -``. A refusal is ``bad_params`` naming the field.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from ..common import names

ID = re.compile(r"[A-Za-z0-9_.+-]{1,64}")


def _safe(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    names.check(value, what, max_len=64)  # UnsafeName is a ValueError: a validation error
    if not ID.fullmatch(value):
        raise ValueError(f"{what} {str(value)[:80]!r}: use 1-64 of A-Z a-z 0-9 _ . + -")
    return value


class UpdateParams(BaseModel):
    """``{"model": N, "version": V, "registry": URL?, "deployment": ID?}`` (``id``: an older
    name of ``deployment``). Unknown keys are ignored (newer senders may add some)."""

    model_config = ConfigDict(extra="ignore")
    error_code: ClassVar[str] = "bad_params"

    model: str
    version: str
    registry: str | None = None
    deployment: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        model, version = data.get("model"), data.get("version")
        if not isinstance(model, str) or not isinstance(version, str) or not model or not version:
            raise ValueError(
                "update needs 'model' and 'version' as strings (fleet cmd sends k=v as a string; "
                "or use `edge-agent fleet push-update`)"
            )
        did = data.get("deployment") or data.get("id")
        if did is not None and not isinstance(did, str):
            names.check(did, "deployment")  # says what it is instead of a string
        registry = data.get("registry")
        return {**data, "deployment": did, "registry": registry or None}

    @field_validator("model", "version", "deployment")
    @classmethod
    def _safe_name(cls, v: str | None, info: Any) -> str | None:
        return _safe(v, info.field_name)
