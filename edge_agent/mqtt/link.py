"""Thin adapter around paho-mqtt 2.x: connection settings, TLS, credentials, will, callbacks.

Nothing else in edge-agent imports paho. :class:`Link` owns one paho client with its network
thread (``loop_start``); paho reconnects by itself and re-sends QoS 1 messages it was handed.
The delay before each retry is ours (:class:`~edge_agent.common.backoff.HeldBackoff`: exponential,
with jitter, reset only once a connection held ``reconnect_hold_s``), handed to paho through
``reconnect_delay_set`` from the disconnect / connect-failure callbacks. Callbacks only put
events on queues or call short functions passed in; no paho lock is held while our code
takes its own locks (on_publish is called with paho's message lock held).

Every connection attempt has a deadline (``connect_timeout_s``): paho's ``connect_timeout``
bounds the TCP connect and the whole TLS handshake (CPython's ``do_handshake`` has one
deadline for all of it), and a timer armed when the socket opens shuts it down if the broker's
CONNACK has not come by then (without it a broker or middlebox that accepts the connection and
never answers would hold the link "connecting" for a whole keepalive). Name resolution is not
bounded by it.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..common.backoff import Backoff, HeldBackoff
from ..config import Config, MQTTConfig
from .errors import BrokerError, CredentialsError

log = logging.getLogger("edge_agent.mqtt")

RECONNECT_JITTER = 0.5
"""Each retry delay is shortened by a random fraction up to this (a fleet does not retry in
lockstep after a broker restart)."""


@dataclass(frozen=True)
class TLSFiles:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verify_hostname: bool = True


@dataclass(frozen=True)
class LinkSettings:
    """Everything needed to connect; the password is kept out of ``repr``."""

    host: str = "localhost"
    port: int = 1883
    client_id: str = "edge-agent"
    protocol: str = "5"
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    session_expiry_s: int = 24 * 3600
    clean_start: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TLSFiles | None = None
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0
    reconnect_hold_s: float = 10.0
    max_inflight: int = 64

    @property
    def where(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


def read_password(mqtt: MQTTConfig) -> str | None:
    """The broker password from ``password_file`` or ``password`` (e.g. EDGE_AGENT_MQTT__PASSWORD).

    Read when connecting, never at import; never logged.
    """
    if mqtt.password_file is not None:
        try:
            return mqtt.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise CredentialsError(
                f"mqtt.password_file {mqtt.password_file}: cannot read it ({exc.strerror}); "
                "check the path and that the agent's user may read it"
            ) from None
    if mqtt.password is not None:
        return mqtt.password.get_secret_value()
    return None


def settings_from_config(cfg: Config, client_id: str | None = None) -> LinkSettings:
    return settings_from_mqtt(cfg.mqtt, client_id or cfg.mqtt_client_id)


def settings_from_mqtt(m: MQTTConfig, client_id: str) -> LinkSettings:
    """Link settings from an ``[mqtt]`` section (the agent's, or ``fleet serve``'s)."""
    tls = None
    if m.tls is not None:
        tls = TLSFiles(m.tls.ca, m.tls.cert, m.tls.key, m.tls.verify_hostname)
    return LinkSettings(
        host=m.host,
        port=m.port,
        client_id=client_id,
        protocol=m.protocol,
        keepalive_s=m.keepalive_s,
        connect_timeout_s=m.connect_timeout_s,
        session_expiry_s=m.session_expiry_s,
        username=m.username,
        password=read_password(m),
        tls=tls,
        reconnect_initial_s=m.reconnect_initial_s,
        reconnect_max_s=m.reconnect_max_s,
        max_inflight=m.max_inflight,
    )


def _check_file(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise CredentialsError(f"mqtt.tls.{what} {path}: file not found")
    if not os.access(path, os.R_OK):
        raise CredentialsError(f"mqtt.tls.{what} {path}: not readable by this user")
    return str(path)


def make_client(
    s: LinkSettings, will: tuple[str, bytes] | None = None, manual_ack: bool = False
) -> paho.Client:
    """A configured paho client (not connected)."""
    v5 = s.protocol == "5"
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else s.clean_start,
        manual_ack=manual_ack,
    )
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    if s.tls is not None:
        if s.tls.cert is None and s.tls.key is not None:
            raise CredentialsError("mqtt.tls.key is set without mqtt.tls.cert; set both or neither")
        ca = _check_file(s.tls.ca, "ca")
        cert = _check_file(s.tls.cert, "cert")
        key = _check_file(s.tls.key, "key")
        try:
            client.tls_set(
                ca_certs=ca,
                certfile=cert,
                keyfile=key,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (ssl.SSLError, OSError) as exc:
            raise CredentialsError(
                f"mqtt.tls: cannot load the CA/certificate/key: {exc}; check they are PEM "
                "and that the key matches the certificate"
            ) from None
        client.tls_insecure_set(not s.tls.verify_hostname)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(
        max(1, round(s.reconnect_initial_s)), max(1, round(s.reconnect_max_s))
    )
    client.max_inflight_messages_set(s.max_inflight)
    client.connect_timeout = s.connect_timeout_s  # TCP connect, the whole TLS handshake
    return client


def connect_properties(s: LinkSettings) -> Properties | None:
    if s.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = s.session_expiry_s
    return props


def _connect_kwargs(s: LinkSettings) -> dict[str, Any]:
    kw: dict[str, Any] = {"keepalive": s.keepalive_s}
    if s.protocol == "5":
        kw["clean_start"] = s.clean_start
        kw["properties"] = connect_properties(s)
    return kw


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was not accepted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return ("timed out connecting: no TCP connection or no finished TLS handshake within "
                "[mqtt] connect_timeout_s")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on this port?)"
    if isinstance(exc, (TimeoutError, OSError)):
        return f"cannot reach the broker: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Incoming:
    """A message the link received (commands)."""

    topic: str
    payload: bytes
    response_topic: str | None = None
    correlation: bytes | None = None
    mid: int = 0
    qos: int = 0
    retain: bool = False
    connection: int = 0  # Link.connects when it arrived (an ack belongs to that connection)


class Link:
    """One paho client, connected in the background, reconnecting with backoff."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        subscriptions: list[str],
        will: tuple[str, bytes] | None = None,
        on_message: Callable[[Incoming], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        on_ack: Callable[[], None] | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        manual_ack: bool = False,
    ) -> None:
        self.settings = settings
        self._info = logging.DEBUG if quiet else logging.INFO
        self.subscriptions = subscriptions
        self.acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # SUBACK of the latest connection's subscriptions
        self._refused = threading.Event()
        self.last_error = ""
        self.connects = 0
        self._on_message = on_message
        self._on_state = on_state
        self._on_ack = on_ack
        self._clock = clock
        self.backoff = HeldBackoff(
            Backoff(
                settings.reconnect_initial_s,
                max(settings.reconnect_initial_s, settings.reconnect_max_s),
                jitter=RECONNECT_JITTER,
                rng=rng,
            ),
            settings.reconnect_hold_s,
        )
        self.retry_delay_s: float | None = None  # the delay before the coming retry
        self.manual_ack = manual_ack
        self._client = make_client(settings, will, manual_ack)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_publish = self._handle_publish
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_pre_connect = self._handle_pre_connect
        self._client.on_socket_open = self._handle_socket_open
        self._started = False
        self._attempt_at = 0.0  # monotonic start of the current connection attempt
        self._connack_timer: threading.Timer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, wait: float | None = None) -> None:
        """Connect in the background (the agent: never fails, retries with backoff).

        With ``wait`` (central commands): connect now and wait up to ``wait`` seconds for
        the broker to accept us and our subscriptions; raise :class:`BrokerError` saying why not.
        """
        s = self.settings
        if wait is None:
            self._client.connect_async(s.host, s.port, **_connect_kwargs(s))
            self._client.loop_start()
            self._started = True
            return
        try:
            self._client.connect(s.host, s.port, **_connect_kwargs(s))
        except (OSError, ValueError) as exc:
            raise BrokerError(f"{s.where}: {describe_error(exc)}") from None
        self._client.loop_start()
        self._started = True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._refused.is_set():
                break
            if self.connected.is_set() and self.subscribed.wait(0.05):
                return
            time.sleep(0.02)
        why = self.last_error or f"no answer within {wait:g} s"
        self.stop()
        raise BrokerError(f"{s.where}: {why}")

    def stop(self, last: tuple[str, bytes] | None = None, timeout: float = 0.5) -> None:
        """Publish ``last`` (retained, e.g. an offline status), disconnect, stop the thread."""
        if not self._started:
            return
        if last is not None and self.connected.is_set():
            info = self._client.publish(last[0], last[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False
        self._disarm()
        self.connected.clear()

    # -- publishing ------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        correlation: bytes | None = None,
        response_topic: str | None = None,
    ) -> int:
        """Hand a message to paho; returns its mid. Paho keeps QoS 1 messages until PUBACK,
        re-sending them after a reconnect, even when this call happened while disconnected."""
        props = None
        if self.settings.protocol == "5" and (correlation is not None or response_topic):
            props = Properties(PacketTypes.PUBLISH)
            if correlation is not None:
                props.CorrelationData = correlation
            if response_topic:
                props.ResponseTopic = response_topic
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerError(f"{self.settings.where}: publish to {topic} failed: {info.rc}")
        return int(info.mid)

    def ack(self, m: Incoming) -> bool:
        """With ``manual_ack``: acknowledge ``m`` (PUBACK) once it is safely handled. A message
        from an earlier connection is not acknowledged (the broker sends it again)."""
        if not self.manual_ack or m.qos == 0 or m.connection != self.connects:
            return False
        rc = self._client.ack(m.mid, m.qos)
        return bool(rc == MQTTErrorCode.MQTT_ERR_SUCCESS)

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _handle_pre_connect(self, client: paho.Client, userdata: Any) -> None:
        self._attempt_at = time.monotonic()

    def _handle_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        """The TCP (+TLS) connection is up and CONNECT about to go: arm the CONNACK deadline."""
        self._disarm()
        now = time.monotonic()
        began, self._attempt_at = (self._attempt_at or now), 0.0  # 0: no pre_connect seen
        left = began + self.settings.connect_timeout_s - now
        timer = threading.Timer(max(left, 0.0), self._connack_overdue, (sock,))
        timer.daemon = True
        self._connack_timer = timer
        timer.start()

    def _disarm(self) -> None:
        timer, self._connack_timer = self._connack_timer, None
        if timer is not None:
            timer.cancel()

    def _connack_overdue(self, sock: Any) -> None:
        if self.connected.is_set() or self._refused.is_set():
            return
        self.last_error = (
            f"no CONNACK within {self.settings.connect_timeout_s:g} s of connecting (a broker "
            "or proxy that accepts connections and does not answer; [mqtt] connect_timeout_s)"
        )
        log.warning("%s: %s", self.settings.where, self.last_error)
        _shut_down(sock)  # paho sees the connection lost and retries after the backoff

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self._disarm()
        if rc.is_failure:
            hint = " (check the user name and password)" if "auth" in rc.getName().lower() else ""
            self.last_error = f"the broker refused the connection: {rc.getName()}{hint}"
            self._refused.set()
            log.warning("%s: %s", self.settings.where, self.last_error)
            return
        self.connects += 1
        self.last_error = ""
        self.backoff.up(self._clock())
        log.log(
            self._info,
            "connected to %s (session present: %s)",
            self.settings.where,
            bool(getattr(flags, "session_present", False)),
        )
        self.subscribed.clear()
        if self.subscriptions:
            client.subscribe([(t, 1) for t in self.subscriptions])
        else:
            self.subscribed.set()
        self.connected.set()
        if self._on_state:
            self._on_state(True)

    def _schedule_retry(self) -> None:
        """Choose the delay before paho's next attempt (paho waits min_delay = max_delay)."""
        delay = self.backoff.next_delay(self._clock())
        self.retry_delay_s = delay
        self._client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self._disarm()  # closed before its CONNACK: no timer may touch a reused descriptor
        was = self.connected.is_set()
        self.connected.clear()
        self._schedule_retry()
        if was:
            if rc.is_failure:
                self.last_error = f"connection lost: {rc.getName()}"
                log.warning("disconnected from %s: %s", self.settings.where, rc.getName())
            if self._on_state:
                self._on_state(False)

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        refused = [t for t, c in zip(self.subscriptions, codes, strict=False) if c.is_failure]
        if refused:
            self.last_error = f"the broker refused subscriptions: {', '.join(refused)}"
            log.warning("%s: %s", self.settings.where, self.last_error)
        self.subscribed.set()

    def wait_ready(self, timeout: float) -> bool:
        """Connected and subscribed."""
        return self.connected.wait(timeout) and self.subscribed.wait(timeout)

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._disarm()
        if not self.last_error:
            self.last_error = "cannot connect (will retry with backoff)"
        self._schedule_retry()

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        self.acks.put((mid, not rc.is_failure))
        if self._on_ack is not None:
            self._on_ack()

    def _handle_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if self._on_message is None:
            return
        rt = corr = None
        props = getattr(msg, "properties", None)
        if props is not None:
            rt = getattr(props, "ResponseTopic", None)
            corr = getattr(props, "CorrelationData", None)
        try:
            self._on_message(Incoming(msg.topic, bytes(msg.payload), rt, corr, msg.mid, msg.qos,
                                      bool(msg.retain), self.connects))
        except Exception:  # never let our bug kill paho's network thread
            log.exception("error handling a message on %s", msg.topic)


def _shut_down(sock: Any) -> None:
    """Shut a connection down under paho's blocked or waiting reads, through a duplicate of its
    descriptor: the (possibly TLS) socket object paho uses is not touched from this thread."""
    try:
        fd = sock.fileno()
        if fd < 0:
            return
        with socket.socket(fileno=os.dup(fd)) as dup:
            dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def check_broker(cfg: Config, timeout: float = 5.0) -> tuple[bool, str]:
    """Can this config reach and log into the broker? ``(ok, one-line message)``.

    For ``doctor``: connects with a separate client id (so the running agent is not kicked
    off), a clean session and no will, then disconnects. Never prints the password.
    """
    try:
        s = settings_from_config(cfg, client_id=f"{cfg.mqtt_client_id}-check")
        s = LinkSettings(**{**s.__dict__, "clean_start": True, "session_expiry_s": 0})
        client = make_client(s)
    except (CredentialsError, ValueError) as exc:
        return False, str(exc)
    result: list[str] = []

    def on_connect(c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        result.append("" if not rc.is_failure else rc.getName())

    client.on_connect = on_connect
    try:
        client.connect(s.host, s.port, **_connect_kwargs(s))
    except (OSError, ValueError) as exc:
        return False, f"{s.where}: {describe_error(exc)}"
    deadline = time.monotonic() + timeout
    try:
        while not result and time.monotonic() < deadline:
            rc = client.loop(timeout=0.1)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not result:
                return False, (
                    f"{s.where}: the broker closed the connection during login ({rc.name}); "
                    "it may require a client certificate (mqtt.tls.cert/key) or refuse this one"
                )
    finally:
        client.disconnect()
    if not result:
        return False, f"{s.where}: no answer to CONNECT within {timeout:g} s"
    if result[0]:
        hint = " (check mqtt.username and the password)" if "auth" in result[0].lower() else ""
        return False, f"{s.where}: the broker refused the connection: {result[0]}{hint}"
    proto = "MQTT 5" if s.protocol == "5" else "MQTT 3.1.1"
    how = ", TLS" if s.tls else ""
    who = f", user {s.username}" if s.username else ""
    return True, f"{s.where}: connected ({proto}{how}{who})"
