"""Ed25519 release keys: generate, load, key ids, detached signatures.

A key id is the first 16 hex digits of the sha256 of the raw 32-byte public key, so the same key
has the same id wherever it is stored. The detached signature file (``manifest.json.sig``) is a
small JSON object ``{"alg": "ed25519", "keyid": "...", "sig": "<base64>"}`` over the exact bytes
of ``manifest.json``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..common.atomicfile import atomic_write_bytes as write_atomic
from ..errors import ConfigError

SIG_ALG = "ed25519"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def keygen(out: Path) -> tuple[Path, Path, str]:
    """Write a new private key to ``out`` (mode 0600, never overwritten) and ``out.pub``."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_path = out.with_name(out.name + ".pub")
    for p in (out, pub_path):
        if p.exists():
            raise ConfigError(f"{p}: already exists; refusing to overwrite a key")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        write_atomic(pub_path, public_pem(private.public_key()))
    except OSError as exc:
        where = exc.filename or out
        raise ConfigError(f"{where}: cannot write the key ({exc.strerror})") from None
    return out, pub_path, key_id(private.public_key())


def _load_pem(path: Path, what: str, public: bool) -> object:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        if public:
            return serialization.load_pem_public_key(data)
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not a PEM {what}") from None


def load_private(path: Path) -> Ed25519PrivateKey:
    key = _load_pem(path, "private key", public=False)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = _load_pem(path, "trusted key ([updates] trusted_keys)", public=True)
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key ([updates] trusted_keys)")
    return key


def sign(private: Ed25519PrivateKey, data: bytes) -> bytes:
    """The detached signature file's bytes for ``data``."""
    envelope = {
        "alg": SIG_ALG,
        "keyid": key_id(private.public_key()),
        "sig": base64.b64encode(private.sign(data)).decode("ascii"),
    }
    return (json.dumps(envelope, indent=1) + "\n").encode()


@dataclass(frozen=True)
class TrustStore:
    """The release keys this device accepts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustStore:
        keys = {}
        for p in paths:
            k = load_public(Path(p))
            keys[key_id(k)] = k
        return cls(keys)

    def verify(self, keyid: str, signature: bytes, data: bytes) -> bool:
        """True if the key is trusted and the signature is valid (KeyError if unknown)."""
        key = self.keys[keyid]
        try:
            key.verify(signature, data)
        except InvalidSignature:
            return False
        return True
