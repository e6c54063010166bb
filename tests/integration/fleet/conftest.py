"""Fixtures of the fleet service tests: the MQTT tests' real brokers."""

from tests.integration.mqtt.conftest import mosquitto, mosquitto_factory

__all__ = ["mosquitto", "mosquitto_factory"]
