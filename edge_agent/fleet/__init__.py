"""The central side as a service (#16): ``edge-agent fleet serve``.

Pure cores (no socket, thread, paho or database): :mod:`.spec` (waves, thresholds, durations),
:mod:`.rollout` (the rollout controller, a data table of states and transitions),
:mod:`.records` (what a device's MQTT record means for the fleet). Adapters around them:
:mod:`.store` (the storage interface) and :mod:`.sqlite_store`, :mod:`.ingest` (MQTT 5 shared
subscription, acknowledged only once stored), :mod:`.service` (the running service),
:mod:`.http` (FastAPI app, dashboard), :mod:`.metrics` (Prometheus collector).

The device side never imports this package (import contract in pyproject.toml).
"""
