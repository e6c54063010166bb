"""A small client of ``fleet serve``'s HTTP API (stdlib only), for ``fleet rollout`` and
``fleet status``. Errors say which server and what it answered."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .errors import FleetServerError, RolloutError

MAX_BYTES = 64 * 1024 * 1024


class FleetClient:
    def __init__(self, server: str, token: str | None = None, timeout: float = 20.0) -> None:
        if not server.startswith(("http://", "https://")):
            server = "http://" + server
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, body or {})

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        url = self.server + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read(MAX_BYTES))
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code == 401:
                raise FleetServerError(f"{self.server}: the token was refused ({detail}); "
                                       "give --token-file or fleet.token_file") from None
            if exc.code in (400, 404, 409, 422):
                raise RolloutError(detail) from None
            raise FleetServerError(f"{url}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise FleetServerError(f"{self.server}: cannot reach fleet serve ({why}); is it "
                                   "running, and is --server right?") from None
        except ValueError:
            raise FleetServerError(f"{url}: the answer is not JSON (not fleet serve?)") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        d = json.loads(exc.read(65536))
    except (ValueError, OSError):
        return exc.reason or str(exc.code)
    detail = d.get("detail") if isinstance(d, dict) else d
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(f"{'.'.join(str(x) for x in e.get('loc', [])[1:])}: {e.get('msg')}"
                         for e in detail if isinstance(e, dict))
    return str(detail)
