"""The firmware bridge inside the agent: the component (watchdog, telemetry, triggers)
and its output rules. The protocol library is ``firmware_bridge``."""
