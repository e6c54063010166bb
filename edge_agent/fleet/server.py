"""``edge-agent fleet serve``: store + service + HTTP API (uvicorn on its own thread), until
SIGTERM/SIGINT. Reads top to bottom: open the store -> start the service -> serve HTTP ->
wait -> stop HTTP -> stop the service -> close the store."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from ..common.asgi_thread import ServerThread
from ..config import is_loopback
from ..errors import ConfigError
from ..mqtt.link import settings_from_mqtt
from .config import FleetFile, is_url, read_token, split_listen
from .errors import FleetError
from .service import FleetService, ServeSettings
from .sql_store import SqlStore

log = logging.getLogger("edge_agent.fleet")


def open_store(database: str) -> SqlStore:
    """The store ``[fleet] database`` names: a postgresql:// URL, else a SQLite file."""
    if is_url(database):
        from .postgres_store import PostgresStore, describe

        log.info("fleet database: %s", describe(database))
        return PostgresStore(database)
    from .sqlite_store import SqliteStore

    return SqliteStore(Path(database))


def serve(cfg: FleetFile, *, ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> None:
    from .http import create_app

    f = cfg.fleet
    host, port = split_listen(f.listen)
    token = read_token(f.token_file)
    if token is None and not is_loopback(host):
        raise ConfigError(f"fleet.listen {f.listen}: binding beyond loopback needs "
                          "fleet.token_file (the HTTP API starts rollouts)")
    store = open_store(f.database)
    stop = stop or threading.Event()
    service = None
    try:
        link = settings_from_mqtt(cfg.mqtt, f.client_id)
        service = FleetService(store, link, ServeSettings(
            root=f.root, share_group=f.share_group, shared=f.shared, max_devices=f.max_devices,
            registry=f.registry, advertise=f.advertise or (
                None if host in ("0.0.0.0", "::") else f"http://{f.listen}")))
        service.start()
        try:
            web = ServerThread(create_app(service, store, token), host, port, name="fleet-http")
            web.start()
        except (OSError, RuntimeError) as exc:
            raise FleetError(f"fleet.listen {f.listen}: the HTTP API could not start "
                             f"({exc})") from None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        if threading.current_thread() is threading.main_thread():
            old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        else:
            old = {}
        try:
            log.info("fleet serve: HTTP API on http://%s:%d (%s), database %s", host, port,
                     "token required" if token else "no token: loopback only", store.where)
            if ready is not None:
                ready.set()
            while not stop.wait(0.5):
                if service.error is not None:
                    raise service.error
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            web.stop(5)
    finally:
        if service is not None:
            service.stop()
        store.close()
