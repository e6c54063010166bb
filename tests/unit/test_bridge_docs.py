"""docs/bridge.md stays true: its config example parses, its snapshot table names real keys."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.bridge.component import BridgeComponent, telemetry_fields
from edge_agent.config import parse_config
from firmware_bridge.messages import parse_telemetry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOC = Path(__file__).resolve().parents[2] / "docs" / "bridge.md"


def test_config_example_parses() -> None:
    text = DOC.read_text().split("```toml", 1)[1].split("```", 1)[0]
    cfg = parse_config(tomllib.loads(text))
    assert cfg.bridge.enabled and cfg.bridge.watchdog_timeout_ms == 5000
    assert cfg.bridge.rules[0].label == "face"


def test_snapshot_table_names_status_keys() -> None:
    section = DOC.read_text().split('## `snapshot["bridge"]`', 1)[1].split("## CLI", 1)[0]
    documented = set()
    for row in section.splitlines()[4:]:
        if row.startswith("|"):
            documented |= {k.strip(" `") for k in row.split("|")[1].split(",")}
    comp = BridgeComponent(parse_config({"bridge": {"port": "loop://"}}))
    tel = parse_telemetry(bytes(40))
    keys = set(comp.status()) | set(telemetry_fields(tel)) | {"telemetry_age_s", "last_error"}
    keys |= {"board", "firmware", "reset_reason", "boot_count"}
    assert keys <= documented, keys - documented
