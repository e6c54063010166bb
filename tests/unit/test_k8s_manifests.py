"""deploy/k8s: every manifest valid against the Kubernetes schemas (kubernetes-validate's
bundled copies, offline, strict: an unknown field is an error), and linted: probes, resources
and security on every container, the ports the probes use are the ones the configs serve, the
configs in the ConfigMaps pass edge-agent's own validation, the secrets they name are mounted,
no real secret in the repository."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from edge_agent.config import parse_config
from edge_agent.fleet.config import FleetFile, split_listen

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
VERSION = "1.30.0"


def docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted(K8S.rglob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                out.append((f"{f.relative_to(K8S)}:{d['kind']}/{d['metadata']['name']}", d))
    return out


DOCS = docs()


def kind(k: str, name: str) -> dict[str, Any]:
    return next(d for _, d in DOCS if d["kind"] == k and d["metadata"]["name"] == name)


def test_the_manifests_are_all_there() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for _, d in DOCS)
    assert kinds == [("ConfigMap", "edge-agent"), ("ConfigMap", "edge-fleet"),
                     ("DaemonSet", "edge-agent"), ("PodDisruptionBudget", "edge-fleet"),
                     ("Secret", "edge-agent"), ("Secret", "edge-fleet"),
                     ("Service", "edge-fleet"), ("Service", "edge-fleet-replicas"),
                     ("StatefulSet", "edge-fleet")]


@pytest.mark.parametrize("where,doc", DOCS, ids=[w for w, _ in DOCS])
def test_valid_against_the_kubernetes_schema(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_validator_refuses_what_kubernetes_would() -> None:
    bad = copy.deepcopy(kind("StatefulSet", "edge-fleet"))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = [1]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)
    bad["spec"]["template"]["spec"]["containers"][0].pop("livenessProbe")
    bad["spec"]["replica"] = 2  # a typo: strict refuses unknown fields
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize("name", ["StatefulSet/edge-fleet", "DaemonSet/edge-agent"])
def test_every_container_has_probes_resources_and_security(name: str) -> None:
    w = kind(*name.split("/"))
    spec = w["spec"]["template"]["spec"]
    for c in _containers(w):
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] in ("/healthz", "/readyz")
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and \
            {"cpu", "memory"} <= set(c["resources"]["limits"])
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert ":" in c["image"] and not c["image"].endswith(":latest")
    assert spec["securityContext"]["runAsUser"] == 10001
    names = {v["name"] for v in spec["volumes"]}
    for c in [*_containers(w), *spec.get("initContainers", [])]:
        assert {m["name"] for m in c["volumeMounts"]} <= names


def _mounts(w: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = w["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    return {m["mountPath"]: vols[m["name"]] for m in _containers(w)[0]["volumeMounts"]}


def _in_secret(path: Path, w: dict[str, Any], secret: dict[str, Any]) -> bool:
    """Is ``path`` a file of ``secret`` as the workload mounts it?"""
    for mount, vol in _mounts(w).items():
        if "secret" in vol and path.parent == Path(mount):
            items = vol["secret"].get("items") or [{"key": k, "path": k}
                                                    for k in secret["stringData"]]
            return any(i["path"] == path.name and i["key"] in secret["stringData"]
                       for i in items)
    return False


def test_the_central_config_and_its_probes_agree() -> None:
    cm = kind("ConfigMap", "edge-fleet")
    cfg = FleetFile.model_validate(tomllib.loads(cm["data"]["fleet.toml"]))
    assert cfg.fleet.database.startswith("postgresql://") and ":" not in \
        cfg.fleet.database.split("//", 1)[1].split("@", 1)[0]  # no password in the URL
    host, port = split_listen(cfg.fleet.listen)
    w = kind("StatefulSet", "edge-fleet")
    c = _containers(w)[0]
    assert host == "0.0.0.0" and cfg.fleet.token_file is not None  # beyond loopback: token
    assert [p["containerPort"] for p in c["ports"]] == [port]
    assert "--client-id" in c["args"] and "$(POD_NAME)" in c["args"]  # stable per replica
    secret = kind("Secret", "edge-fleet")
    assert _in_secret(cfg.fleet.token_file, w, secret)
    assert cfg.mqtt.password_file is not None and _in_secret(cfg.mqtt.password_file, w, secret)
    env = {e["name"]: e for e in c["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] in secret["stringData"]
    assert _mounts(w)["/etc/edge-fleet/fleet.toml"]["configMap"]["name"] == "edge-fleet"
    pdb = kind("PodDisruptionBudget", "edge-fleet")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        w["spec"]["template"]["metadata"]["labels"].items()
    assert w["spec"]["replicas"] >= 2


def test_the_device_config_and_its_probes_agree() -> None:
    cm = kind("ConfigMap", "edge-agent")
    data = tomllib.loads(cm["data"]["agent.toml"])
    w = kind("DaemonSet", "edge-agent")
    c = _containers(w)[0]
    http = data["http"]
    cfg = parse_config(data, environ={"EDGE_AGENT_DEVICE__ID": "node-1"}, where="agent.toml")
    assert cfg.device.id == "node-1"  # the env the DaemonSet sets from the node name
    assert {e["name"] for e in c["env"]} >= {"EDGE_AGENT_DEVICE__ID"}
    assert cfg.http.host == "0.0.0.0" and cfg.http.token_file  # the kubelet probes the pod IP
    assert [p["containerPort"] for p in c["ports"]] == [cfg.http.port]
    probe_ports = {c[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe",
                                                     "startupProbe")}
    assert probe_ports == {"http"}
    secret = kind("Secret", "edge-agent")
    for f in (http["token_file"], data["mqtt"]["password_file"],
              *data["updates"]["trusted_keys"]):
        assert _in_secret(Path(f), w, secret), f
    mounts = _mounts(w)
    assert mounts[data["device"]["state_dir"]]["hostPath"]["type"] == "DirectoryOrCreate"
    assert mounts[data["camera"]["source"]]["hostPath"]["type"] == "CharDevice"
    assert mounts[data["bridge"]["port"]]["hostPath"]["type"] == "CharDevice"


@pytest.mark.parametrize("name", ["edge-agent", "edge-fleet"])
def test_no_real_secret_in_the_repository(name: str) -> None:
    assert all(v.startswith("REPLACE") for v in kind("Secret", name)["stringData"].values())
