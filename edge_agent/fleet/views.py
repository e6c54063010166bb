"""What the HTTP API, the CLI and the dashboard show of devices and rollouts. Pure."""

from __future__ import annotations

from typing import Any

from ..mqtt.fleet import DeviceRow
from . import rollout as R
from .store import UpdateRecord


def device_json(row: DeviceRow) -> dict[str, Any]:
    d = row.to_json()
    d["first_seen"] = row.first_seen
    return d


def update_json(u: UpdateRecord) -> dict[str, Any]:
    return {k: v for k, v in u.__dict__.items() if v is not None}


def rollout_summary(r: R.Rollout) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in r.targets.values():
        counts[t.state] = counts.get(t.state, 0) + 1
    return {
        "id": r.id, "model": r.model, "version": r.version, "state": r.state,
        "reason": r.reason, "group": r.group, "created_at": r.created_at,
        "wave": r.wave + 1 if r.sizes else 0, "waves": len(r.sizes),
        "devices": len(r.targets), "counts": counts,
    }


def rollout_json(r: R.Rollout) -> dict[str, Any]:
    p = r.policy
    out = rollout_summary(r)
    out.update({
        "registry": r.registry,
        "policy": {"waves": [str(w) for w in p.waves], "success_threshold": p.success_threshold,
                   "error_threshold": p.error_threshold, "min_executed": p.min_executed,
                   "wave_timeout_s": p.wave_timeout_s, "on_halt": p.on_halt},
        "progress": R.wave_progress(r),
        "targets": [t.__dict__ | {"wave": None if t.wave is None else t.wave + 1}
                    for t in sorted(r.targets.values(), key=lambda t: (t.wave is None,
                                                                       t.wave or 0, t.device))],
        "decisions": [d.__dict__ for d in r.decisions],
    })
    return out
