"""Pure cores stand alone: each imports with paho, psutil, pyserial, OpenCV and every inference
runtime blocked (a subprocess whose import system refuses them)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.helpers import cli_env

BLOCKED = ("paho", "psutil", "serial", "cv2", "ai_edge_litert", "tflite_runtime", "tensorflow")

PURE_CORES = (
    # the agent's foundations
    "edge_agent.errors",
    "edge_agent.config",
    "edge_agent.component",
    "edge_agent.common.atomicfile",
    "edge_agent.common.backoff",
    "edge_agent.common.strict_json",
    "edge_agent.common.throttle",
    "edge_agent.resources",
    # inference maths and descriptions (numpy only)
    "edge_agent.inference.tensors",
    "edge_agent.inference.transform",
    "edge_agent.inference.agreement",
    "edge_agent.inference.nms",
    "edge_agent.inference.result",
    "edge_agent.inference.description",
    "edge_agent.inference.decoders",
    # camera, telemetry
    "edge_agent.camera.backoff",
    "edge_agent.camera.frame",
    "edge_agent.telemetry.histogram",
    "edge_agent.telemetry.latency",
    "edge_agent.telemetry.cgroup",
    "edge_agent.telemetry.snapshot",
    # MQTT without paho
    "edge_agent.mqtt.topics",
    "edge_agent.mqtt.fleet",
    "edge_agent.mqtt.commands",
    "edge_agent.mqtt.events",
    "edge_agent.mqtt.errors",
    "edge_agent.mqtt.delivery",
    # updates
    "edge_agent.updates.manifest",
    "edge_agent.updates.state",
    "edge_agent.updates.rollout",
    "edge_agent.updates.trial",
    "edge_agent.updates.errors",
    # the central service's cores (no broker, database or web framework)
    "edge_agent.fleet.spec",
    "edge_agent.fleet.rollout",
    "edge_agent.fleet.store",
    "edge_agent.fleet.views",
    "edge_agent.fleet.errors",
    # operations
    "edge_agent.ops.reload",
    "edge_agent.ops.status",
    "edge_agent.ops.sdnotify",
    # the bridge: the agent side's rules, the protocol without pyserial
    "edge_agent.bridge.rules",
    "firmware_bridge.crc",
    "firmware_bridge.cobs",
    "firmware_bridge.framing",
    "firmware_bridge.messages",
    "firmware_bridge.eventseq",
    "firmware_bridge.errors",
)

SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys
    blocked, modules = json.loads(sys.argv[1])

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in blocked:
                raise ImportError(f"import of {name} refused by the test")
            return None

    sys.meta_path.insert(0, Refuse())
    failures = {}
    for module in modules:
        for loaded in [m for m in sys.modules if m.partition(".")[0] in
                       ("edge_agent", "firmware_bridge")]:
            del sys.modules[loaded]  # each core imports from a clean slate
        try:
            importlib.import_module(module)
        except Exception as exc:
            failures[module] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(failures))
    """
)


def _import_blocked(modules: tuple[str, ...]) -> dict[str, str]:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps([BLOCKED, modules])],
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_each_pure_core_imports_with_paho_psutil_serial_cv2_and_runtimes_blocked() -> None:
    assert _import_blocked(PURE_CORES) == {}


def test_the_block_works() -> None:
    """The same subprocess refuses the adapters (so an empty result above means something)."""
    failures = _import_blocked(("edge_agent.mqtt.link", "edge_agent.telemetry.resources",
                                "firmware_bridge.link", "edge_agent.camera.sources"))
    assert sorted(failures) == ["edge_agent.camera.sources", "edge_agent.mqtt.link",
                                "edge_agent.telemetry.resources", "firmware_bridge.link"]
    assert "refused by the test" in failures["edge_agent.mqtt.link"]
