"""Test helpers shipped with the package: a real mosquitto on a free port, TLS material.

Used by the test suite and ``benchmarks/mqtt.py``. Nothing here is used by the agent.
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import BrokerError
from .link import LinkSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout:g} s")


class Mosquitto:
    """A mosquitto broker with its own config file, data dir and log, in ``workdir``.

    ``extra`` is appended to the listener config (TLS, password_file, acl_file...).
    ``persistence`` keeps sessions and queued messages across :meth:`restart`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        extra: str = "allow_anonymous true\n",
        persistence: bool = True,
    ) -> None:
        exe = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if exe is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
            # started as root, mosquitto would drop to user "mosquitto", who cannot read
            # the test's private files: stay the user who started it
            f"user {getpass.getuser()}",
            extra.rstrip("\n"),
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        logf = self.log.open("ab")
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=logf, stderr=logf)
        logf.close()
        try:
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    wait_port(self.port, 0.2)
                    break
                except BrokerError:
                    continue
            else:
                raise BrokerError("exited" if self.proc.poll() is not None else "timeout")
        except BrokerError:
            self.stop()
            raise BrokerError(f"mosquitto did not start: {self.log_text()[-2000:]}") from None
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop it cleanly (SIGTERM; persistence is saved)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class TLSMaterial:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: a client trusting it must fail


def make_tls(directory: Path, hostname: str = "localhost", ip_san: bool = True) -> TLSMaterial:
    """A CA, a server certificate for ``hostname`` (+ 127.0.0.1 if ``ip_san``), a client
    certificate, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(k: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        return path

    def write_cert(c: x509.Certificate, path: Path) -> Path:
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return path

    def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        c = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False
            )
            .sign(k, hashes.SHA256())
        )
        return k, c

    def leaf(
        ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str, server: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            names: list[x509.GeneralName] = [x509.DNSName(hostname)]
            if ip_san:
                names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    ca_key, ca_cert = make_ca("edge-agent test CA")
    s_key, s_cert = leaf(ca_key, ca_cert, hostname, True)
    c_key, c_cert = leaf(ca_key, ca_cert, "edge-device", False)
    _, other = make_ca("some other CA")
    d = directory
    return TLSMaterial(
        ca=write_cert(ca_cert, d / "ca.pem"),
        server_cert=write_cert(s_cert, d / "server.pem"),
        server_key=write_key(s_key, d / "server.key"),
        client_cert=write_cert(c_cert, d / "client.pem"),
        client_key=write_key(c_key, d / "client.key"),
        other_ca=write_cert(other, d / "other-ca.pem"),
    )


def tls_listener(t: TLSMaterial, require_client_cert: bool = True) -> str:
    """mosquitto config lines for a TLS listener using ``t``."""
    return (
        "allow_anonymous true\n"
        f"cafile {t.ca}\ncertfile {t.server_cert}\nkeyfile {t.server_key}\n"
        f"require_certificate {'true' if require_client_cert else 'false'}\n"
        "tls_version tlsv1.2\n"
    )


class Recorder:
    """A subscriber that records every message (topic, payload, properties) it receives.

    Persistent session by default (``clean_start=False``) so that it keeps its QoS 1
    subscriptions across a broker restart when the broker has persistence on.
    """

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = "test-recorder",
        protocol: str = "5",
        persistent: bool = True,
        settings: LinkSettings | None = None,
    ) -> None:
        import threading

        from .link import Incoming, Link

        s = settings or LinkSettings(
            host="127.0.0.1", port=port, client_id=client_id, protocol=protocol
        )
        s = replace(s, clean_start=not persistent, reconnect_initial_s=1, reconnect_max_s=1)
        self.messages: list[Incoming] = []
        self._cond = threading.Condition()

        def on_message(m: Incoming) -> None:
            with self._cond:
                self.messages.append(m)
                self._cond.notify_all()

        self.link = Link(s, subscriptions=topics, on_message=on_message)
        self.link.start(wait=10)

    def on(self, topic: str) -> list[Any]:
        """JSON payloads received on ``topic`` so far."""
        with self._cond:
            return [json.loads(m.payload) for m in self.messages if m.topic == topic]

    def wait(self, pred: Callable[[Recorder], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def publish(self, topic: str, payload: bytes, **kw: Any) -> None:
        self.link.publish(topic, payload, **kw)

    def close(self) -> None:
        self.link.stop()
