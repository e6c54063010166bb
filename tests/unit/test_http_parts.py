"""The HTTP API's parts in-process: body checks, /metrics families, the /v1/infer pool's
admission and model following, the [http] config rules (the server itself: tests/integration/
test_http_api.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.api import infer_http
from edge_agent.api.bodies import BodyError, check_type, decode_image
from edge_agent.api.infer import Busy, InferPool
from edge_agent.api.infer_http import TYPES_KEPT, media_type_of
from edge_agent.api.metrics import build_registry, exposition
from edge_agent.config import is_loopback, parse_config, read_token
from edge_agent.errors import ConfigError
from edge_agent.telemetry.histogram import Histogram
from edge_agent.telemetry.latency import StageLatencies
from tests.support.helpers import DATA, MODELS

PHOTO = DATA / "astronaut.jpg"


def test_decode_image_refuses_each_kind_of_bad_body_with_its_status() -> None:
    jpeg = PHOTO.read_bytes()
    assert decode_image(jpeg).shape == (512, 512, 3)
    cases = {
        b"": (422, "empty"),
        jpeg[:-200]: (422, "truncated JPEG"),
        np.random.default_rng(1).bytes(4000): (422, "not an image"),
        b"GIF89a" + b"\0" * 100: (422, "not an image"),
    }
    for body, (status, words) in cases.items():
        with pytest.raises(BodyError) as e:
            decode_image(body, "body")
        assert e.value.status == status and words in str(e.value), str(e.value)
    _, png = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))
    assert decode_image(png.tobytes()).shape == (20, 30, 3)


def test_content_types() -> None:
    assert check_type("image/JPEG; q=1") == "image/jpeg"
    assert check_type(None) == ""
    assert check_type("multipart/form-data; boundary=x") == "multipart/form-data"
    for bad in ("text/plain", "application/json", "video/mp4"):
        with pytest.raises(BodyError) as e:
            check_type(bad)
        assert e.value.status == 415 and bad in str(e.value)


class Device:
    """What the collector reads (the component's accessors), with a bridge and MQTT."""

    def counters(self) -> dict[str, Any]:
        return {"captured": 10, "processed": 9, "errors": 1, "in_flight": 0, "swaps": 0,
                "dropped_by": {"stale": 0, "error": 1, "swap": 0, "shutdown": 0}}

    def latencies(self) -> dict[str, Histogram]:
        lat = StageLatencies()
        lat.record_many({"invoke": 0.004, "e2e": 0.02})
        lat.record("invoke", 0.005)  # on a bound: counted below it, as Prometheus does
        return lat.total()

    def camera(self) -> dict[str, Any]:
        return {"health": "reconnecting", "reconnects": 2, "bad_frames": 0}

    def model_info(self) -> dict[str, Any]:
        return {"name": "m", "version": "3", "sha256": "ab" * 32, "backend": "litert",
                "delegate": "cpu"}

    def snapshot(self) -> dict[str, Any]:
        return {"fps": {"processed": 7.5}, "cpu": {"percent_of_available": 50.0},
                "temperature": {"cpu_c": 51.0},
                "bridge": {"connected": True, "board_temp_c": 40.5, "accel_temp_c": 60.0,
                           "power_w": 4.25},
                "mqtt": {"connected": False, "outbox": {"pending": 12,
                                                        "dropped": {"metrics.records": 3}}}}

    def api_counts(self) -> dict[str, Any]:
        return {"ok": 4, "busy": 1, "stream_clients": 0}


def test_metrics_follow_prometheus_naming() -> None:
    reg = build_registry(Device(), "9.9")
    body, ctype = exposition(reg)
    assert ctype.startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in fams.values() for s in f.samples}
    assert value[("edge_agent_board_power_watts", ())] == 4.25
    assert value[("edge_agent_board_temperature_celsius", (("sensor", "board"),))] == 40.5
    assert value[("edge_agent_cpu_temperature_celsius", ())] == 51.0
    assert value[("edge_agent_cpu_ratio", ())] == 0.5
    assert value[("edge_agent_outbox_pending_records", ())] == 12
    assert value[("edge_agent_outbox_lost_records_total", ())] == 3
    assert value[("edge_agent_camera_up", ())] == 0
    assert value[("edge_agent_camera_state", (("state", "reconnecting"),))] == 1
    assert value[("edge_agent_frames_dropped_total", (("reason", "error"),))] == 1
    assert value[("edge_agent_stage_latency_seconds_count", (("stage", "invoke"),))] == 2
    invoke_sum = value[("edge_agent_stage_latency_seconds_sum", (("stage", "invoke"),))]
    assert invoke_sum == pytest.approx(0.009)
    for le, n in (("0.0025", 0), ("0.005", 2), ("+Inf", 2)):
        assert value[("edge_agent_stage_latency_seconds_bucket",
                      (("le", le), ("stage", "invoke")))] == n
    assert value[("edge_agent_stage_latency_seconds_bucket",
                  (("le", "0.025"), ("stage", "e2e")))] == 1
    assert value[("edge_agent_stage_latency_seconds_count", (("stage", "age"),))] == 0
    assert value[("edge_agent_http_infer_requests_total", (("outcome", "busy"),))] == 1
    assert fams["edge_agent_fps"].type == "gauge"
    assert fams["edge_agent_outbox_lost_records"].type == "counter"
    # no label whose values grow with traffic
    for f in fams.values():
        for s in f.samples:
            assert set(s.labels) <= {"stage", "le", "reason", "kind", "state", "sensor",
                                     "outcome", "version", "name", "sha256", "backend",
                                     "delegate"}, s


@pytest.fixture
def runner() -> Any:
    from edge_agent.inference import Runner

    return Runner.open(MODELS / "blazeface_int8.tflite")


def test_api_threads_run_below_the_pipeline() -> None:
    import os

    from edge_agent.common.asgi_thread import lower_thread_priority

    seen: list[tuple[int, int]] = []

    def body() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        assert lower_thread_priority(10)
        seen.append((before, os.getpriority(os.PRIO_PROCESS, tid)))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    (before, after), = seen
    assert after == min(before + 10, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # only it


def test_a_thread_started_by_a_lowered_one_is_lowered_once() -> None:
    """uvicorn's loop (lowered) starts the /v1/infer pool's threads: they inherit its nice and
    must end at the process's + 5, not + 10."""
    import os

    from edge_agent.common.asgi_thread import lower_thread_priority

    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    seen: list[int] = []

    def child() -> None:
        assert lower_thread_priority(5)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    def parent() -> None:
        assert lower_thread_priority(5)
        t = threading.Thread(target=child)
        t.start()
        t.join()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=parent)
    t.start()
    t.join()
    assert seen == [min(base + 5, 19)] * 2


def test_infer_pool_admits_a_bounded_number_then_busy(runner: Any) -> None:
    pool = InferPool(lambda: runner, workers=1, max_pending=2)
    pool.admit()
    pool.admit()
    with pytest.raises(Busy, match=r"http\.max_infer"):
        pool.admit()
    pool.release()
    pool.admit()
    assert pool.counts["busy"] == 1
    pool.release()
    pool.release()
    with pytest.raises(RuntimeError, match="without an admitted request"):
        pool.release()  # one release too many is a bug, said at once (not a slot made up)
    assert pool._in_flight == 0
    pool.admit()
    pool.admit()  # both slots again
    with pytest.raises(Busy):
        pool.admit()


def test_content_types_are_remembered_and_a_refusal_stays_a_refusal() -> None:
    for _ in range(3):  # the second and third answers come from the memo
        assert media_type_of("image/JPEG; q=1") == "image/jpeg"
        with pytest.raises(BodyError) as e:
            media_type_of("text/plain")
        assert e.value.status == 415 and "text/plain" in str(e.value)
    for i in range(TYPES_KEPT * 2):  # many distinct headers: the memo stays bounded
        with pytest.raises(BodyError):
            media_type_of(f"x/{i}")
    assert len(infer_http._TYPES) <= TYPES_KEPT
    assert media_type_of(None) == ""


def test_the_reply_model_fields_follow_a_new_model() -> None:
    class Pool:
        def __init__(self) -> None:
            self.model = {"file": "a.tflite", "sha256": "aa"}

        def run_bytes(self, *args: Any) -> dict[str, Any]:
            return {"model": dict(self.model), "detections": []}

    class Dev:
        def __init__(self) -> None:
            self.pool = Pool()
            self.info = {"name": "m", "version": "1", "sha256": "aa"}

        def model_info(self) -> dict[str, Any]:
            return dict(self.info)

    import json

    dev = Dev()
    first = json.loads(infer_http._run_and_encode(dev, b"", None, None, "body"))
    assert first["model"] == {"name": "m", "version": "1", "sha256": "aa", "file": "a.tflite"}
    dev.info = {"name": "m", "version": "2", "sha256": "bb"}
    dev.pool.model = {"file": "b.tflite", "sha256": "bb"}
    second = json.loads(infer_http._run_and_encode(dev, b"", None, None, "body"))
    assert second["model"] == {"name": "m", "version": "2", "sha256": "bb", "file": "b.tflite"}


def test_an_inline_reply_is_sent_before_its_slot_is_released(runner: Any) -> None:
    pool = InferPool(lambda: runner, workers=1, max_pending=2)

    class Dev:
        def model_info(self) -> dict[str, Any]:
            return {"name": "m"}

    dev = Dev()
    dev.pool = pool  # type: ignore[attr-defined]
    seen: list[tuple[int, int]] = []
    pool.admit()
    infer_http.run_inline(dev, PHOTO.read_bytes(), infer_http.Admitted("image/jpeg", None, None),
                          lambda reply: seen.append((reply[0], pool._in_flight)))
    assert seen == [(200, 1)] and pool._in_flight == 0 and pool.counts["ok"] == 1
    pool.admit()

    def broken(reply: Any) -> None:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):  # the send failing still frees the slot
        infer_http.run_inline(dev, b"not an image", infer_http.Admitted("", None, None), broken)
    assert pool._in_flight == 0 and pool.counts["bad_input"] == 1 and pool.counts["ok"] == 1


def test_infer_pool_uses_its_own_interpreter_and_follows_a_swap(runner: Any) -> None:
    current = [runner]
    pool = InferPool(lambda: current[0], workers=1, max_pending=4)
    out = pool.run_bytes(PHOTO.read_bytes())
    assert len(out["detections"]) == 1 and out["detections"][0]["label"] == "face"
    worker = pool.workers[0]
    assert worker.runner.model is not runner.model  # a clone, not the pipeline's
    strict = pool.run_bytes(PHOTO.read_bytes(), threshold=0.99)
    assert strict["detections"] == []
    swapped = runner.clone()
    current[0] = swapped
    pool.run_bytes(PHOTO.read_bytes())
    assert worker.origin is swapped and worker.runner.model is not swapped.model
    pool = InferPool(lambda: current[0], workers=2, max_pending=4)
    # many threads at once: every worker used by one caller at a time
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(5):
                assert len(pool.run_bytes(PHOTO.read_bytes())["detections"]) == 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_http_config_rules(tmp_path: Path) -> None:
    cfg = parse_config({})
    assert cfg.http.enabled and cfg.http.host == "127.0.0.1" and cfg.http.port == 8770
    with pytest.raises(ConfigError, match=r"http\.cert and http\.key"):
        parse_config({"http": {"cert": "/x.pem"}})
    with pytest.raises(ConfigError, match=r"http\.max_body_bytes"):
        parse_config({"http": {"max_body_bytes": 10}})
    short = tmp_path / "t"
    short.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 16"):
        read_token(short, "http.token_file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(tmp_path / "missing", "http.token_file")
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_component_refuses_a_public_bind_without_token(tmp_path: Path) -> None:
    from edge_agent.api.component import HttpComponent

    cfg = parse_config({"http": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError) as e:
        HttpComponent(cfg, status=dict)
    assert "http.host 0.0.0.0" in str(e.value) and "http.token_file" in str(e.value)
    token = tmp_path / "token"
    token.write_text("x" * 32)
    cfg = parse_config({"http": {"host": "0.0.0.0", "token_file": str(token)}})
    assert HttpComponent(cfg, status=dict).token == "x" * 32


def test_without_fastapi_the_agent_says_so_and_runs_without_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    import sys

    from edge_agent.agent.runner_loader import RunnerLoader
    from edge_agent.app import components

    cfg = parse_config({"device": {"state_dir": str(tmp_path)}})
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what find_spec sees when not installed
    with caplog.at_level("ERROR", logger="edge_agent.app"):
        names = [c.name for c in components(cfg, RunnerLoader(cfg))]
    assert "http" not in names and "updates" in names
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "uvicorn is not installed" in lines[0], lines
    assert "http.enabled = false" in lines[0]


def test_infer_query_reads_threshold_and_top_k_and_names_a_bad_one() -> None:
    from edge_agent.api.bodies import infer_query

    assert infer_query("") == (None, None)
    assert infer_query("threshold=0.5&top_k=3&other=x") == (0.5, 3)
    assert infer_query("threshold=0.1&threshold=1") == (1.0, None)  # the last one
    for query, name in (("threshold=2", "threshold"), ("threshold=x", "threshold"),
                        ("threshold=nan", "threshold"), ("threshold=", "threshold"),
                        ("top_k=0", "top_k"), ("top_k=1e9", "top_k"), ("top_k=1001", "top_k"),
                        ("top_k=2.5", "top_k")):
        with pytest.raises(BodyError, match=rf"^query\.{name}: ") as e:
            infer_query(query)
        assert e.value.status == 422


def _asgi_post(app: Any, path: str, body: bytes, ctype: str) -> tuple[int, dict[str, str], Any]:
    """One request through an ASGI app, in-process (no sockets): status, headers, JSON body."""
    import asyncio
    import json

    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 2),
             "headers": [(b"content-type", ctype.encode()),
                         (b"content-length", str(len(body)).encode())]}
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body[:1000], "more_body": True},
                {"type": "http.request", "body": body[1000:], "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_the_lean_infer_layer_and_the_fastapi_route_answer_alike(runner: Any) -> None:
    """POST /v1/infer is served by InferLayer ahead of FastAPI; the route (there for the
    schema) gives the same answers. Both run the image on the pool's threads, nice'd."""
    import os

    from edge_agent.api.component import Limits
    from edge_agent.api.routes import create_app, create_fastapi

    class Device:
        version = "test"
        limits = Limits(1 << 20, 1, 1.0)
        pool = InferPool(lambda: runner, workers=1, max_pending=2, nice=3)

        def model_info(self) -> dict[str, Any]:
            return {"name": "blazeface_int8"}

    device = Device()
    jpeg = PHOTO.read_bytes()
    try:
        for app in (create_app(device, None), create_fastapi(device, None)):
            status, headers, doc = _asgi_post(app, "/v1/infer?top_k=1", jpeg, "image/jpeg")
            assert status == 200 and headers["content-type"] == "application/json", doc
            assert [d["label"] for d in doc["detections"]] == ["face"]
            assert doc["model"]["name"] == "blazeface_int8" and doc["image"]["width"] == 512
            assert _asgi_post(app, "/v1/infer", b"hello", "text/plain")[0] == 415
            assert _asgi_post(app, "/v1/infer", b"\xff\xd8junk", "image/jpeg")[0] == 422
            assert _asgi_post(app, "/v1/infer", b"\0" * (2 << 20), "image/jpeg")[0] == 413
            assert _asgi_post(app, "/v1/infer?threshold=3", jpeg, "image/jpeg")[0] == 422
        assert device.pool.counts["ok"] == 2
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        pool_threads = [t for t in threading.enumerate() if t.name.startswith("http-infer")]
        assert pool_threads
        for t in pool_threads:
            assert t.native_id is not None
            assert os.getpriority(os.PRIO_PROCESS, t.native_id) == min(base + 3, 19)
    finally:
        device.pool.close()


def test_the_lean_layer_checks_the_token() -> None:
    from edge_agent.api.infer_http import InferLayer

    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("passed on")

    class Device:
        pool = InferPool(lambda: None)

    layer = InferLayer(never, Device(), "s3cret-token-0123456789")
    status, headers, doc = _asgi_post(layer, "/v1/infer", b"x", "image/jpeg")
    assert status == 401 and headers["www-authenticate"] == "Bearer" and "token" in doc["detail"]


def test_reply_heads_follow_uvicorns_default_headers() -> None:
    from edge_agent.api.infer_protocol import _head

    lines = {200: b"HTTP/1.1 200 OK\r\n", 429: b"HTTP/1.1 429 Too Many Requests\r\n"}
    monday = [(b"date", b"Mon, 30 Nov 2026 10:00:00 GMT"), (b"server", b"uvicorn")]
    head = _head(200, monday, lines)
    assert head == (b"HTTP/1.1 200 OK\r\ndate: Mon, 30 Nov 2026 10:00:00 GMT\r\n"
                    b"server: uvicorn\r\ncontent-type: application/json\r\ncontent-length: ")
    assert _head(200, monday, lines) is head  # made once while the list is the same
    later = [(b"date", b"Mon, 30 Nov 2026 10:00:01 GMT")]  # uvicorn's next second: a new list
    assert _head(200, later, lines).count(b"10:00:01") == 1
    assert b"10:00:00" not in _head(200, later, lines)
    assert _head(429, later, lines).startswith(b"HTTP/1.1 429 Too Many Requests\r\ndate: ")


def test_the_pool_runs_on_workers_plus_one_threads_and_counts_the_wait(runner: Any) -> None:
    """4 admitted at once on 1 interpreter: 2 threads (one decoding while the other runs); the
    requests that waited for a thread say so in ``queued``, not only those that waited for the
    interpreter."""
    import asyncio

    pool = InferPool(lambda: runner, workers=1, max_pending=4)
    assert pool.threads == 2
    seen: set[int] = set()
    photo = PHOTO.read_bytes()

    def job() -> dict[str, Any]:
        seen.add(threading.get_ident())
        return pool.run_bytes(photo)

    async def four() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(pool.submit(job) for _ in range(4))))

    try:
        outs = asyncio.run(four())
    finally:
        pool.close()
    assert len(seen) == 2 and all(o["detections"][0]["label"] == "face" for o in outs)
    queued = sorted(o["latency_ms"]["queued"] for o in outs)
    # the last had two runs (one a thread's, one the interpreter's) ahead of it: more than
    # the first, which had none
    assert queued[-1] > queued[0]
    assert queued[-1] >= min(o["latency_ms"]["invoke"] for o in outs)
    assert InferPool(lambda: runner, workers=3, max_pending=2).threads == 3  # max(slots, workers)
