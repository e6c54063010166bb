"""Helpers shared by the tests (real brokers, registries, models, processes)."""
