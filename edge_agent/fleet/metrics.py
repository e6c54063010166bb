"""Prometheus ``/metrics`` of the fleet: a custom collector that reads the store at scrape time
(no second bookkeeping). Names follow Prometheus practice: ``_total`` counters, no per-device
labels (a fleet of 10,000 devices stays 10,000 rows in the database, not 10,000 series).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .. import __version__
from . import rollout as R
from .store import FleetStore


class FleetCollector(Collector):
    def __init__(self, store: FleetStore, counters: Counter[str] | None = None) -> None:
        self.store = store
        self.counters = counters if counters is not None else Counter()

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("edge_fleet_info", "fleet serve", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        by_state: Counter[str] = Counter()
        by_version: Counter[tuple[str, str]] = Counter()
        for online, active, m, ver, n in self.store.device_counts():  # counted by the database
            by_state[{True: "online", False: "offline", None: "unknown"}[online]] += n
            if online:
                model, _, version = (active or "").rpartition(" ")
                by_version[(model or m or "", version or ver or "")] += n
        g = GaugeMetricFamily("edge_fleet_devices", "Devices known, by state", labels=["state"])
        for s in ("online", "offline", "unknown"):
            g.add_metric([s], by_state[s])
        yield g
        v = GaugeMetricFamily("edge_fleet_devices_online", "Online devices by active model "
                              "version", labels=["model", "version"])
        for (m, ver), n in sorted(by_version.items()):
            v.add_metric([m, ver], n)
        yield v
        lost: Counter[tuple[str, str]] = Counter()
        for _dev, stream, missing, reported, _dups in self.store.lost_by_stream():
            lost[(stream, "missing")] += missing
            lost[(stream, "reported")] += reported
        c = CounterMetricFamily("edge_fleet_records_lost", "Records lost (seq gaps: missing = "
                                "never explained, reported = covered by a device's gap record)",
                                labels=["stream", "kind"])
        for stream in ("metrics", "events", "update"):
            for kind in ("missing", "reported"):
                c.add_metric([stream, kind], lost[(stream, kind)])
        yield c
        rollouts = self.store.rollouts()
        rs = GaugeMetricFamily("edge_fleet_rollouts", "Rollouts by state", labels=["state"])
        states = Counter(r.state for r in rollouts)
        for s in R.STATES:
            rs.add_metric([s], states[s])
        yield rs
        rd = GaugeMetricFamily("edge_fleet_rollout_devices", "Devices of active rollouts by "
                               "state", labels=["rollout", "state"])
        for r in rollouts:
            if not r.final:
                for s, n in sorted(Counter(t.state for t in r.targets.values()).items()):
                    rd.add_metric([r.id, s], n)
        yield rd
        ing = CounterMetricFamily("edge_fleet_ingest", "Messages taken in by fleet serve "
                                  "(since it started)", labels=["kind"])
        for k in ("records", "duplicates", "ignored", "replies", "commands_sent",
                  "commands_resent", "commands_unsendable"):
            ing.add_metric([k], self.counters[k])
        yield ing


def registry_for(store: FleetStore, counters: Counter[str] | None = None) -> Any:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(store, counters))
    return reg
