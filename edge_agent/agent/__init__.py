"""The agent: its lifecycle (build, start, heartbeat, stop), the pipeline, sinks,
the one model loader and the console reporter."""
