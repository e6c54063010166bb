"""TLS with run-time certificates, and username/password with an ACL, on a real mosquitto."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.mqtt import BrokerError, check_broker
from edge_agent.mqtt.link import LinkSettings, TLSFiles
from edge_agent.mqtt.testing import Mosquitto, Recorder, make_tls, tls_listener
from tests.support.helpers import run_cli
from tests.support.mqtt_agent import AgentProc, write_config

MakeBroker = Callable[..., Mosquitto]


def _cfg(port: int, **mqtt: object) -> object:
    return parse_config({"device": {"id": "dev1"}, "mqtt": {"host": "127.0.0.1", "port": port,
                                                            **mqtt}})


def test_tls_client_certs(tmp_path: Path, mosquitto_factory: MakeBroker) -> None:
    t = make_tls(tmp_path / "pki")
    broker = mosquitto_factory(extra=tls_listener(t))
    tls = {"ca": str(t.ca), "cert": str(t.client_cert), "key": str(t.client_key)}
    ok, msg = check_broker(_cfg(broker.port, tls=tls))  # type: ignore[arg-type]
    assert ok, msg
    assert "TLS" in msg
    # a CA that did not sign the broker's certificate is refused
    ok, msg = check_broker(_cfg(broker.port, tls={**tls, "ca": str(t.other_ca)}))  # type: ignore[arg-type]
    assert not ok and "certificate" in msg
    # the broker requires a client certificate
    ok, msg = check_broker(_cfg(broker.port, tls={"ca": str(t.ca)}))  # type: ignore[arg-type]
    assert not ok and "client certificate" in msg
    # missing key file: a clear error naming the key
    ok, msg = check_broker(_cfg(broker.port, tls={**tls, "key": str(tmp_path / "nope.key")}))  # type: ignore[arg-type]
    assert not ok and "mqtt.tls.key" in msg and "not found" in msg

    # the agent publishes over TLS; a TLS subscriber sees it
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", broker.port, tls=tls)
    agent = AgentProc(cfg)
    sub = LinkSettings(host="127.0.0.1", port=broker.port, client_id="sub",
                       tls=TLSFiles(t.ca, t.client_cert, t.client_key))
    rec = Recorder(broker.port, ["edge/dev1/#"], settings=sub)
    try:
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) >= 2)
        assert rec.on("edge/dev1/status")[-1]["online"] is True
    finally:
        rec.close()
        agent.kill()


def test_tls_hostname_verification(tmp_path: Path, mosquitto_factory: MakeBroker) -> None:
    t = make_tls(tmp_path / "pki", hostname="broker.example", ip_san=False)
    broker = mosquitto_factory(extra=tls_listener(t, require_client_cert=False))
    tls: dict[str, object] = {"ca": str(t.ca)}
    ok, msg = check_broker(_cfg(broker.port, tls=tls))  # type: ignore[arg-type]
    assert not ok and "mismatch" in msg  # 127.0.0.1 is not broker.example
    ok, msg = check_broker(_cfg(broker.port, tls={**tls, "verify_hostname": False}))  # type: ignore[arg-type]
    assert ok, msg


ACL = """\
pattern write edge/%u/#
pattern read edge/%u/cmd/#
pattern write fleet/#

user dev1
topic read edge/group/lab/cmd/#

user central
topic readwrite #
"""


@pytest.fixture
def auth_broker(tmp_path: Path, mosquitto_factory: MakeBroker) -> Mosquitto:
    pw = tmp_path / "passwd"
    for user, secret in (("dev1", "s3cret-dev1"), ("dev2", "s3cret-dev2"), ("central", "c-pass")):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if not pw.exists() else []),
                        str(pw), user, secret], check=True, capture_output=True)
    (tmp_path / "acl").write_text(ACL)
    return mosquitto_factory(extra=f"allow_anonymous false\npassword_file {pw}\n"
                                   f"acl_file {tmp_path / 'acl'}\n")


def _user(port: int, user: str, password: str, cid: str) -> LinkSettings:
    return LinkSettings(host="127.0.0.1", port=port, client_id=cid, username=user,
                        password=password)


def test_password_and_acl(tmp_path: Path, auth_broker: Mosquitto) -> None:
    port = auth_broker.port
    (tmp_path / "dev1.pw").write_text("s3cret-dev1\n")
    (tmp_path / "bad.pw").write_text("wrong\n")
    ok, msg = check_broker(_cfg(port, username="dev1", password_file=str(tmp_path / "bad.pw")))  # type: ignore[arg-type]
    assert not ok and "refused" in msg and "wrong" not in msg
    ok, msg = check_broker(_cfg(port, username="dev1", password_file=str(tmp_path / "dev1.pw")))  # type: ignore[arg-type]
    assert ok, msg
    assert "s3cret" not in msg

    central = Recorder(port, ["#"], settings=_user(port, "central", "c-pass", "central"))
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", port, username="dev1",
                       password_file=str(tmp_path / "dev1.pw"))
    agent = AgentProc(cfg)
    spy = Recorder(port, ["edge/dev2/cmd/#", "edge/group/other/cmd/#", "edge/dev1/cmd/+",
                          "edge/group/lab/cmd/#"],
                   settings=_user(port, "dev1", "s3cret-dev1", "dev1-spy"))
    intruder = Recorder(port, [], settings=_user(port, "dev2", "s3cret-dev2", "dev2"))
    try:
        assert central.wait(lambda r: len(r.on("edge/dev1/metrics")) >= 2)
        # a device may publish only under its own prefix
        intruder.publish("edge/dev1/metrics", b'{"seq": 999999}')
        intruder.publish("edge/dev2/metrics", b'{"seq": 1}')
        # and read only its own and its group's commands
        for topic in ("edge/dev2/cmd/ping", "edge/group/other/cmd/ping",
                      "edge/dev1/cmd/ping", "edge/group/lab/cmd/ping"):
            central.publish(topic, json.dumps({"id": topic.replace("/", "_")}).encode())
        assert central.wait(lambda r: len(r.on("edge/dev2/metrics")) >= 1)
        assert spy.wait(lambda r: len(r.messages) >= 2)
        assert central.wait(lambda r: len(r.on("edge/dev1/cmd/ping/reply")) >= 1)
        assert central.wait(lambda r: len(r.on("edge/dev1/cmd/ping/reply")) >= 2)
        assert all(m["seq"] != 999999 for m in central.on("edge/dev1/metrics"))
        assert sorted(m.topic for m in spy.messages) == [
            "edge/dev1/cmd/ping", "edge/group/lab/cmd/ping"]
        # the central CLI with a password file through the same ACL
        (tmp_path / "central.pw").write_text("c-pass\n")
        r = run_cli("fleet", "cmd", "dev1", "ping", "--broker", f"127.0.0.1:{port}",
                    "--username", "central", "--password-file", str(tmp_path / "central.pw"))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["result"]["pong"] is True
        r = run_cli("fleet", "cmd", "dev1", "ping", "--broker", f"127.0.0.1:{port}",
                    "--username", "central", "--password-file", str(tmp_path / "bad.pw"))
        assert r.returncode == BrokerError.exit_code
        assert "Not authorized" in r.stderr and "wrong" not in r.stderr
    finally:
        for rec in (central, spy, intruder):
            rec.close()
        agent.kill()
    assert "s3cret" not in agent.log.read_text()
