"""The device's HTTP API inside the agent (docs/http.md): health probes, Prometheus /metrics,
status, snapshots and the live stream, ``/v1/infer`` on its own interpreters, commands, and the
technician's page. FastAPI on uvicorn, on its own thread (:mod:`.component`)."""
