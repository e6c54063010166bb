"""Identifiers from outside that become part of a path: one rule, as pure functions.

A deployment id, a model name or version, a file name in a manifest, the device id, a group
or a capture name may end up as one component of a path on the device (or in a registry). Each
must be a single, plain path component, so that ``folder / name`` always lies strictly inside
``folder``. :func:`problem` says what is wrong with a name (or None); :func:`check` raises
:class:`UnsafeName`, which is also a ``ValueError`` (pydantic validators report it as a
validation error naming the key).
"""

from __future__ import annotations

import unicodedata

MAX_LEN = 255


class UnsafeName(ValueError):
    """A name that cannot be one component of a path."""


def problem(name: object, max_len: int = MAX_LEN) -> str | None:
    """Why ``name`` is not a safe single path component; None when it is."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if len(name) > max_len:
        return f"is longer than {max_len} characters"
    if name == "..":
        return "refers to a parent directory (..)"
    if name == ".":
        return "refers to the directory itself (.)"
    if "\x00" in name:
        return "contains a NUL byte"
    if name[0] in "/\\" or (len(name) >= 2 and name[1] == ":" and name[0].isalpha()):
        return "is an absolute path"
    if "/" in name or "\\" in name:
        return "contains a directory separator (/ or \\)"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "contains a control character"
    if name.startswith("."):
        return "starts with a dot (a hidden name)"
    if name != name.strip():
        return "starts or ends with white space"
    return None


def check(name: object, what: str, max_len: int = MAX_LEN) -> str:
    """``name`` itself when it is a safe path component, else :class:`UnsafeName` naming
    ``what`` (e.g. ``"deployment"``) and the reason."""
    why = problem(name, max_len)
    if why is not None:
        shown = repr(name)[:80] if isinstance(name, str) else type(name).__name__
        raise UnsafeName(f"{what} {shown} {why}; use a plain name (letters, digits, _ . + -)")
    assert isinstance(name, str)
    return name
