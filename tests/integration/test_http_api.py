"""The device's HTTP API against the real server inside a running agent (issue 15).

One agent on the shipped demo clip serves most tests (module fixture); the token, the refused
bind, the port in use and the camera that stops each get their own agent.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import DATA, MODELS, run_cli, wait_until
from tests.support.http_agent import TOKEN, HttpAgent, call
from tests.support.ops import MjpegCamera

PHOTO = DATA / "astronaut.jpg"
MAX_BODY = 200_000


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> HttpAgent:
    a = HttpAgent(tmp_path_factory.mktemp("http"), http={"max_body_bytes": MAX_BODY,
                                                         "max_infer": 2})
    try:
        assert wait_until(lambda: a.processed() > 5, 30), a.log_text()
        yield a
    finally:
        code = a.stop()
    assert code == 0, a.log_text()


def test_health_and_readiness(agent: HttpAgent) -> None:
    assert agent.get("/healthz").json()["ok"] is True
    assert wait_until(lambda: agent.get("/readyz").status == 200, 20), agent.get("/readyz")
    assert agent.get("/readyz").json() == {"ready": True, "reason": "ok"}
    schema = agent.get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/metrics", "/v1/infer", "/v1/status",
            "/v1/commands/{name}"} <= set(schema["paths"])


def test_metrics_parse_with_prometheus_names_and_types(agent: HttpAgent) -> None:
    r = agent.get("/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    types = {n: f.type for n, f in fams.items()}
    assert types["edge_agent_stage_latency_seconds"] == "histogram"
    for counter in ("edge_agent_frames_processed", "edge_agent_frames_captured",
                    "edge_agent_frames_dropped", "edge_agent_frame_errors",
                    "edge_agent_camera_reconnects", "process_cpu_seconds",
                    "edge_agent_http_infer_requests"):
        assert types[counter] == "counter", counter
    for gauge in ("edge_agent_fps", "edge_agent_camera_up", "edge_agent_model_info",
                  "process_resident_memory_bytes", "edge_agent_info",
                  "edge_agent_interpreter_threads"):
        assert types[gauge] == "gauge", gauge
    hist = fams["edge_agent_stage_latency_seconds"].samples
    stages = {s.labels["stage"] for s in hist}
    assert stages == {"age", "preprocess", "invoke", "postprocess", "e2e"}
    names = {s.name for s in hist}
    assert names == {"edge_agent_stage_latency_seconds_bucket",
                     "edge_agent_stage_latency_seconds_sum",
                     "edge_agent_stage_latency_seconds_count"}
    count = next(s.value for s in hist if s.name.endswith("_count")
                 and s.labels["stage"] == "invoke")
    assert count > 0
    processed = fams["edge_agent_frames_processed"].samples[0]
    assert processed.name == "edge_agent_frames_processed_total" and processed.value > 0
    reasons = {s.labels["reason"] for s in fams["edge_agent_frames_dropped"].samples}
    assert reasons == {"stale", "error", "swap", "shutdown"}
    info = fams["edge_agent_model_info"].samples[0].labels
    assert info["name"] == "blazeface_int8" and info["backend"] and len(info["sha256"]) == 64
    assert set(info) == {"name", "version", "sha256", "backend", "delegate"}
    assert fams["edge_agent_camera_up"].samples[0].value == 1
    assert fams["edge_agent_interpreter_threads"].samples[0].value == 1  # model.threads = 1
    assert fams["process_resident_memory_bytes"].samples[0].value > 10e6


def test_status_is_what_edge_agent_status_shows(agent: HttpAgent) -> None:
    api = agent.get("/v1/status").json()
    cli = run_cli("status", "--json", "--config", str(agent.config), env=agent.env())
    assert cli.returncode == 0, cli.stderr
    local = json.loads(cli.stdout)
    for key in ("device_id", "version", "pid", "schema"):
        assert api[key] == local[key], key
    assert api["model"]["name"] == local["model"]["name"] == "blazeface_int8"
    assert api["camera"]["health"] == "ok"


def _boxes(doc: dict) -> list[list[float]]:
    return [d["box"] for d in doc["detections"]]


def test_infer_on_a_photo_gives_the_box_the_cli_gives(agent: HttpAgent) -> None:
    r = agent.post("/v1/infer", PHOTO.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert r.status == 200, r
    doc = r.json()
    cli = run_cli("infer", str(MODELS / "blazeface_int8.tflite"), str(PHOTO), "--json")
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    assert len(doc["detections"]) == len(want["detections"]) == 1
    assert np.allclose(_boxes(doc), _boxes(want), atol=1.0), (doc, want)
    assert doc["detections"][0]["label"] == "face"
    assert doc["backend"] == want["backend"]
    assert doc["model"]["name"] == "blazeface_int8" and len(doc["model"]["sha256"]) == 64
    assert doc["latency_ms"]["total"] > 0 and doc["image"] == {"width": 512, "height": 512}
    truth = json.loads((DATA / "astronaut_face.json").read_text())["box"]
    assert np.allclose(doc["detections"][0]["box"], truth, atol=12)
    # multipart, with the decoder's settings per request
    boundary = "xXx"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + \
        PHOTO.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    m = agent.post("/v1/infer?threshold=0.99", body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert m.status == 200 and m.json()["detections"] == [], m  # its score is ~0.93
    m = agent.post("/v1/infer?threshold=0.5&top_k=1", body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert m.status == 200 and np.allclose(_boxes(m.json()), _boxes(want), atol=1.0), m


def test_bad_bodies_get_4xx_and_the_agent_runs_on(agent: HttpAgent) -> None:
    jpeg = PHOTO.read_bytes()
    _, png = cv2.imencode(".png", cv2.imread(str(PHOTO)))
    rng = np.random.default_rng(15)
    big = np.zeros(MAX_BODY + 1, np.uint8).tobytes()
    cases = {
        "oversized": (big, "image/jpeg", 413),
        "oversized, no length": (None, "image/jpeg", 413),
        "empty": (b"", "image/jpeg", 422),
        "random bytes": (rng.bytes(5000), "application/octet-stream", 422),
        "truncated JPEG": (jpeg[: len(jpeg) // 2], "image/jpeg", 422),
        "PNG cut short": (png.tobytes()[:3000], "image/png", 422),
        "text": (b"hello", "text/plain", 415),
        "JSON": (b'{"image": 1}', "application/json", 415),
        "multipart without a file": (b"--b\r\nContent-Disposition: form-data; name=\"x\""
                                     b"\r\n\r\n1\r\n--b--\r\n",
                                     "multipart/form-data; boundary=b", 422),
        "multipart, broken": (b"--b\r\nnonsense", "multipart/form-data; boundary=b", 422),
    }
    before = agent.processed()
    for what, (body, ctype, want) in cases.items():
        if body is None:  # chunked: no Content-Length to refuse it by
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
            conn.putrequest("POST", "/v1/infer")
            conn.putheader("Content-Type", ctype)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for _ in range(4):
                    conn.send(b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer and close before the body's end
            r = conn.getresponse()
            status, detail = r.status, json.loads(r.read())["detail"]
            conn.close()
        else:
            r = agent.post("/v1/infer", body, headers={"Content-Type": ctype})
            status, detail = r.status, r.json()["detail"]
        assert status == want, (what, status, detail)
        assert isinstance(detail, str) and "\n" not in detail and detail, (what, detail)
    for query in ("threshold=2", "threshold=x", "top_k=0", "top_k=1e9"):
        r = agent.post(f"/v1/infer?{query}", jpeg, headers={"Content-Type": "image/jpeg"})
        assert r.status == 422, (query, r)
    assert agent.alive() and agent.get("/healthz").status == 200
    assert wait_until(lambda: agent.processed() > before + 3, 20)

    def counts() -> dict[str, int]:  # from the last heartbeat: it may predate the last requests
        return dict(agent.get("/v1/status").json()["metrics"]["http"]["infer"])

    assert wait_until(lambda: counts()["bad_input"] >= len(cases), 20), counts()
    assert counts().get("failed", 0) == 0


def test_200_concurrent_requests_leave_the_pipeline_running(agent: HttpAgent) -> None:
    jpeg = PHOTO.read_bytes()
    statuses: list[tuple[str, int]] = []
    lock = threading.Lock()
    before = agent.processed()

    def one(i: int) -> None:
        path, body = [("/v1/infer", jpeg), ("/metrics", None), ("/v1/status", None),
                      ("/readyz", None)][i % 4]
        try:
            r = (agent.post(path, body, headers={"Content-Type": "image/jpeg"}, timeout=60)
                 if body else agent.get(path, timeout=60))
            code = r.status
        except OSError:
            code = -1
        with lock:
            statuses.append((path, code))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(statuses) == 200
    # 429: every /v1/infer slot taken (http.max_infer); 503: over http.max_requests at once
    assert {c for _, c in statuses} <= {200, 429, 503}, sorted(set(statuses))
    for path in ("/v1/infer", "/metrics", "/v1/status", "/readyz"):
        assert (path, 200) in statuses, path
    assert agent.alive()
    assert wait_until(lambda: agent.processed() > before + 10, 30)
    assert agent.get("/readyz").status == 200


def test_snapshot_and_stream(agent: HttpAgent) -> None:
    r = agent.get("/v1/snapshot.jpg")
    assert r.status == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.body, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 640
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=20)
    conn.request("GET", "/v1/stream.mjpg")
    s = conn.getresponse()
    assert s.status == 200
    assert s.getheader("content-type").startswith("multipart/x-mixed-replace; boundary=frame")
    data = b""
    while data.count(b"--frame") < 3:
        data += s.read1(65536)
    part = data.split(b"--frame")[1]
    head, _, rest = part.partition(b"\r\n\r\n")
    n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    frame = cv2.imdecode(np.frombuffer(rest[:n], np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None and frame.shape[:2] == (480, 640)
    conn.close()


def test_commands_without_a_token(agent: HttpAgent) -> None:
    names = agent.get("/v1/commands").json()
    assert {"ping", "reload", "update", "rollback"} <= set(names["commands"])
    r = agent.post("/v1/commands/ping")
    assert r.status == 200 and r.json()["result"]["pong"] is True
    r = agent.post("/v1/commands/reload")
    assert r.status == 403 and "http.token_file" in r.json()["detail"]
    assert agent.post("/v1/commands/nosuch").status == 404
    assert agent.post("/v1/commands/ping", b"[1]").status == 422
    assert agent.post("/v1/commands/ping", b"{nope").status == 422


def test_token_required_for_all_but_probes(tmp_path: Path) -> None:
    a = HttpAgent(tmp_path, token=True)
    try:
        def bare(path: str, auth: str | None = None, method: str = "GET") -> int:
            h = {"Authorization": auth} if auth else {}
            return call(a.port, method, path, headers=h).status

        for path in ("/metrics", "/v1/status", "/v1/snapshot.jpg", "/v1/history"):
            assert bare(path) == 401, path
            assert bare(path, "Bearer wrong-token-0123456789") == 401, path
            assert bare(path, f"Basic {TOKEN}") == 401, path
        assert bare("/v1/infer", method="POST") == 401
        assert bare("/healthz") == 200 and bare("/") == 200
        assert a.get("/metrics").status == 200
        r = a.post("/v1/commands/reload")  # with the token: changes the device
        assert r.status == 200, r
        assert r.json()["result"]["reloaded"] == str(a.config)
        r = a.post("/v1/commands/update", b'{"version": 3}')
        assert r.status == 422 and "params" in r.json()["error"]["code"], r
        assert a.alive()
    finally:
        assert a.stop() == 0, a.log_text()


def test_a_bind_beyond_loopback_without_token_refuses_to_start(tmp_path: Path) -> None:
    a = HttpAgent(tmp_path, start=False, http={"host": "0.0.0.0"})
    r = run_cli("run", "--config", str(a.config), "--duration", "5", env=a.env())
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "http.token_file" in ln]
    assert len(lines) == 1 and "http.host 0.0.0.0" in lines[0], r.stderr


def test_a_port_in_use_is_one_error_and_the_agent_runs(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        a = HttpAgent(tmp_path, start=False, http={"port": port})
        r = run_cli("run", "--config", str(a.config), "--frames", "20", env=a.env())
    assert r.returncode == 0, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "cannot serve" in ln]
    assert len(errors) == 1 and f":{port}" in errors[0], r.stderr


def test_readyz_follows_the_camera(tmp_path: Path) -> None:
    cam = MjpegCamera(fps=20)
    try:
        a = HttpAgent(tmp_path, camera={"source": cam.url, "reconnect_initial_s": 0.2,
                                        "reconnect_max_s": 0.5},
                      http={"ready_max_frame_age_s": 1.0})
        try:
            assert wait_until(lambda: a.get("/readyz").status == 200, 30), a.get("/readyz")
            cam.pause()
            assert wait_until(lambda: a.get("/readyz").status == 503, 30)
            reason = a.get("/readyz").json()["reason"]
            assert "camera" in reason or "no frame processed" in reason, reason
            cam.resume()
            assert wait_until(lambda: a.get("/readyz").status == 200, 30), a.get("/readyz")
        finally:
            assert a.stop() == 0, a.log_text()
    finally:
        cam.close()


def test_stop_is_prompt_with_a_viewer_connected(tmp_path: Path) -> None:
    a = HttpAgent(tmp_path)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=20)
    conn.request("GET", "/v1/stream.mjpg")
    s = conn.getresponse()
    assert s.status == 200 and s.read1(1000)
    assert a.stop() == 0, a.log_text()
    log = a.log_text()
    assert "did not stop" not in log and "threads still running" not in log, log
    conn.close()


def test_tls_serves_https_only_and_infer_on_it(tmp_path: Path) -> None:
    """http.cert/key: the whole API over TLS (a CA made here), /v1/infer too (on httptools
    answered by the server's own protocol, through the TLS transport); plain HTTP on that port
    and a client that does not trust the certificate get no answer."""
    import http.client
    import ssl

    from tests.support.updates import make_ca

    ca = make_ca(tmp_path / "tls")
    client = ssl.create_default_context(cafile=str(ca.ca))
    a = HttpAgent(tmp_path, tls=client, http={"cert": str(ca.cert), "key": str(ca.key)})
    try:
        assert a.get("/healthz").status == 200
        for _ in range(3):  # kept apart: the first builds the interpreter, the rest inline
            r = a.post("/v1/infer", PHOTO.read_bytes(), headers={"Content-Type": "image/jpeg"})
            assert r.status == 200, r
            assert [d["label"] for d in r.json()["detections"]] == ["face"]
        text = a.get("/metrics").body.decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        ok = [s.value for s in families["edge_agent_http_infer_requests"].samples
              if s.labels.get("outcome") == "ok" and s.name.endswith("_total")]
        assert ok == [3.0]
        with pytest.raises((http.client.HTTPException, OSError)):
            call(a.port, "GET", "/healthz", timeout=5)  # plain HTTP: refused by the TLS layer
        untrusted = ssl.create_default_context()  # the system's CAs: this one is not among them
        with pytest.raises(ssl.SSLError):
            call(a.port, "GET", "/healthz", timeout=5, tls=untrusted)
        assert a.alive()
    finally:
        assert a.stop() == 0, a.log_text()
