"""The manifest checks, pure: one exception class per rejection, in a fixed order."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edge_agent.updates import errors as E
from edge_agent.updates.keys import TrustStore, key_id, load_private, load_public, sign
from edge_agent.updates.manifest import Manifest, check_file_name, verify_manifest
from tests.support.updates import manifest_doc, new_key

NOW = datetime.now(timezone.utc)


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Any]:
    priv, pub = new_key(tmp_path)
    other_priv, _other_pub = new_key(tmp_path, "other.key")
    return {
        "priv": load_private(priv),
        "other": load_private(other_priv),
        "trust": TrustStore.from_files([pub]),
        "priv_path": priv,
        "pub_path": pub,
    }


def raw_of(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def check(raw: bytes, sig: bytes | None, keys: dict[str, Any], **kw: Any) -> Manifest:
    args: dict[str, Any] = dict(expected_name="demo", highest_seq=None, now=NOW, max_bytes=65536)
    args.update(kw)
    return verify_manifest(raw, sig, keys["trust"], **args)


def test_keygen_private_key_is_0600_and_key_id_is_stable(keys: dict[str, Any]) -> None:
    mode = stat.S_IMODE(keys["priv_path"].stat().st_mode)
    assert mode == 0o600
    kid = key_id(load_public(keys["pub_path"]))
    assert len(kid) == 16 and kid in keys["trust"].keys
    assert kid == key_id(keys["priv"].public_key())


def test_good_manifest_passes(keys: dict[str, Any]) -> None:
    raw = raw_of(manifest_doc(seq=5))
    m = check(raw, sign(keys["priv"], raw), keys, highest_seq=4, input_shape=[1, 8, 8, 3])
    assert m.name == "demo" and m.seq == 5 and m.model_file.size == 108


@pytest.mark.parametrize(
    ("mutate", "exc", "words"),
    [
        ("too_large", E.ManifestTooLarge, "cap"),
        ("unsigned", E.UnsignedManifest, "not signed"),
        ("empty_sig", E.UnsignedManifest, "not signed"),
        ("garbage_sig", E.BadSignature, "malformed"),
        ("tampered", E.BadSignature, "does not match"),
        ("unknown_key", E.UnknownKey, "not in [updates] trusted_keys"),
        ("not_json", E.ManifestNotJSON, "not JSON"),
        ("json_list", E.ManifestNotJSON, "not a JSON object"),
        ("missing", E.ManifestInvalid, "files: missing"),
        ("schema", E.ManifestInvalid, "schema"),
        ("wrong_name", E.WrongModelName, "not 'demo'"),
        ("lower_seq", E.DowngradeRefused, "rollback"),
        ("equal_seq", E.DowngradeRefused, "not above"),
        ("expired", E.ManifestExpired, "expired"),
        ("slash", E.BadFileName, "directory separator"),
        ("dotdot", E.BadFileName, "parent"),
        ("absolute", E.BadFileName, "absolute"),
        ("nul", E.BadFileName, "NUL"),
        ("shape", E.InputShapeMismatch, "[1, 8, 8, 3]"),
        ("runtime", E.Incompatible, "runtime"),
        ("agent_too_old", E.Incompatible, "upgrade the agent"),
        ("model_not_listed", E.ManifestInvalid, "no file"),
    ],
)
def test_each_rejection_has_its_own_exception(
    keys: dict[str, Any], mutate: str, exc: type[Exception], words: str
) -> None:
    doc = manifest_doc(seq=5)
    kw: dict[str, Any] = {}
    sign_with = keys["priv"]
    raw: bytes | None = None
    sig: bytes | None = b"use-signature"
    if mutate == "too_large":
        doc["postprocessing"] = {"labels": ["x" * 100] * 1000}
    elif mutate == "unsigned":
        sig = None
    elif mutate == "empty_sig":
        sig = b"  \n"
    elif mutate == "garbage_sig":
        sig = b"not json at all"
    elif mutate == "unknown_key":
        sign_with = keys["other"]
    elif mutate == "not_json":
        raw = b"\xff{ this is not json"
    elif mutate == "json_list":
        raw = b"[1, 2]"
    elif mutate == "missing":
        del doc["files"]
    elif mutate == "schema":
        doc["schema"] = 99
    elif mutate == "wrong_name":
        doc["name"] = "other"
    elif mutate == "lower_seq":
        kw["highest_seq"] = 9
    elif mutate == "equal_seq":
        kw["highest_seq"] = 5
    elif mutate == "expired":
        doc["expires"] = (NOW - timedelta(minutes=1)).isoformat()
    elif mutate in ("slash", "dotdot", "absolute", "nul"):
        name = {"slash": "sub/m.tflite", "dotdot": "..", "absolute": "/etc/passwd",
                "nul": "m\0.tflite"}[mutate]
        doc["files"].append({"name": name, "size": 1, "sha256": "0" * 64})
    elif mutate == "shape":
        kw["input_shape"] = [1, 224, 224, 3]
    elif mutate == "runtime":
        doc["compatibility"] = {"runtimes": ["tensorflow"]}
        kw["runtime"] = "litert"
    elif mutate == "agent_too_old":
        doc["compatibility"] = {"min_agent": "0.10.0"}
        kw["agent_version"] = "0.9.5"
    elif mutate == "model_not_listed":
        doc["model"]["file"] = "absent.tflite"
    if raw is None:
        raw = raw_of(doc)
    if sig == b"use-signature":
        sig = sign(sign_with, raw)
    if mutate == "tampered":
        raw = raw.replace(b'"seq": 5', b'"seq": 6')
    with pytest.raises(exc) as info:
        check(raw, sig, keys, max_bytes=16384 if mutate == "too_large" else 65536, **kw)
    assert type(info.value) is exc
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_size_cap_is_checked_before_the_signature(keys: dict[str, Any]) -> None:
    with pytest.raises(E.ManifestTooLarge):
        check(b"x" * 2000, None, keys, max_bytes=1024)


def test_signature_is_checked_before_parsing(keys: dict[str, Any]) -> None:
    raw = b"not json"
    with pytest.raises(E.BadSignature):
        check(raw, sign(keys["other"], b"something else").replace(
            json.loads(sign(keys["other"], b"x"))["keyid"].encode(),
            next(iter(keys["trust"].keys)).encode()), keys)


@pytest.mark.parametrize("name", ["model.tflite", "labels.txt", "golden.npz", "a-b_c.1"])
def test_plain_names_pass(name: str) -> None:
    check_file_name(name)


@pytest.mark.parametrize(
    "name", ["a/b", "../x", "..", ".", "/abs", "a\0b", "C:evil", "\\x", ".hidden", "manifest.json"]
)
def test_bad_names_fail(name: str) -> None:
    with pytest.raises(E.BadFileName):
        check_file_name(name)
