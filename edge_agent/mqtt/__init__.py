"""MQTT: topics, on-disk outbox, paho link, commands and the agent's MqttComponent (#4).

The contract is in docs/mqtt.md (topics, payloads, commands) and docs/architecture.md.
The component itself: ``from edge_agent.mqtt.component import MqttComponent``.

Names are loaded on first use (``lazy_loader``, from the names in ``__init__.pyi``), so
importing one pure module of the package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
