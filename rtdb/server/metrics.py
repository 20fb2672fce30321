"""``GET /metrics``: the server's counters in Prometheus' text format (prometheus-client).

Nothing is counted twice for Prometheus: :class:`RtdbCollector` reads, at scrape time, the
counters the code keeps anyway — the :class:`~rtdb.server.monitor.Monitor`'s requests and
denials, the engine's writes by outcome, the realtime layer's
:class:`~rtdb.realtime.outbox.RealtimeMetrics` (WebSocket/long-polling hub and SSE fan-out),
each open store's :class:`~rtdb.storage.group.StoreStats`, the broker's feed stats — and the
live connection counts. Per-namespace series are limited to the :data:`TOP_NAMESPACES`
busiest open namespaces (by committed writes); the rest are summed under ``ns="(other)"``,
so a server with thousands of namespaces keeps a bounded number of series.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rtdb.engine.engine import Engine
from rtdb.server.monitor import Monitor

TOP_NAMESPACES = 20
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Sources:
    """Where the figures live (set by the app factory)."""

    def __init__(self, *, engine: Engine, monitor: Monitor, ws: Any, lp: Any, sse: Any) -> None:
        self.engine = engine
        self.monitor = monitor
        self.ws = ws
        self.lp = lp
        self.sse = sse

    def connections(self) -> dict[str, int]:
        lp = len(getattr(self.lp, "sessions", {}))
        ws = max(0, len(getattr(self.ws, "connections", {})) - lp)
        return {"ws": ws, "lp": lp, "sse": len(getattr(self.sse, "callers", {}))}

    def stores(self) -> list[tuple[str, Any]]:
        """``(ns, StoreStats)`` of every open namespace."""
        return self.engine.store_stats()


class RtdbCollector:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        conns = GaugeMetricFamily("rtdb_connections", "Open client connections by transport.", labels=["transport"])
        for transport, n in s.connections().items():
            conns.add_metric([transport], n)
        yield conns

        requests = CounterMetricFamily("rtdb_requests", "Requests answered, by transport and outcome (WebSocket "
                                       "and long-polling requests are counted as received).",
                                       labels=["transport", "outcome"])
        for (transport, outcome), n in sorted(s.monitor.requests.items()):
            requests.add_metric([transport, outcome], n)
        yield requests

        yield CounterMetricFamily("rtdb_rules_denials", "Reads and writes the security rules denied.",
                                  value=s.monitor.denied)

        writes = CounterMetricFamily("rtdb_writes", "Write commands run by this process, by outcome.",
                                     labels=["outcome"])
        for outcome, n in sorted(getattr(s.engine, "write_outcomes", {}).items()):
            writes.add_metric([outcome], n)
        yield writes

        for name, hub in (("ws", getattr(s.ws, "hub", None)), ("sse", getattr(s.sse, "hub", None))):
            metrics = getattr(hub, "metrics", None)
            if metrics is None:
                continue
            for field in dataclasses.fields(metrics):
                help_text = {
                    "messages_queued": "Event messages queued to clients (events delivered).",
                    "overflow_disconnects": "Clients disconnected because their outbox overflowed (slow consumers).",
                    "payloads_encoded": "Event payloads encoded (one per distinct message).",
                    "window_refreshes": "Query windows read again after a change moved them.",
                }.get(field.name, field.name)
                family = CounterMetricFamily(f"rtdb_realtime_{field.name}", help_text, labels=["transport"])
                family.add_metric([name], getattr(metrics, field.name))
                yield family

        yield from self._stores()

        feed_stats = getattr(getattr(s.engine, "feed", None), "stats", None)
        if feed_stats is not None and dataclasses.is_dataclass(feed_stats):
            for field in dataclasses.fields(feed_stats):
                value = getattr(feed_stats, field.name)
                if isinstance(value, int):
                    yield CounterMetricFamily(f"rtdb_broker_{field.name}", f"Broker: {field.name}.", value=value)

    def _stores(self) -> Iterator[Metric]:
        stores = self.sources.stores()
        stores.sort(key=lambda item: -item[1].ops)
        shown, rest = stores[:TOP_NAMESPACES], stores[TOP_NAMESPACES:]
        groups = CounterMetricFamily("rtdb_commit_groups", "Group commits (one transaction each).", labels=["ns"])
        ops = CounterMetricFamily("rtdb_commit_ops", "Write operations committed in groups.", labels=["ns"])
        seconds = CounterMetricFamily("rtdb_commit_seconds", "Time spent applying and committing groups.",
                                      labels=["ns"])
        largest = GaugeMetricFamily("rtdb_commit_largest_group", "Largest group so far (operations).",
                                    labels=["ns"])
        errors = CounterMetricFamily("rtdb_commit_op_errors", "Operations that failed inside a group.",
                                     labels=["ns"])
        for ns, stats in shown:
            groups.add_metric([ns], stats.batches)
            ops.add_metric([ns], stats.ops)
            seconds.add_metric([ns], stats.seconds)
            largest.add_metric([ns], stats.largest_batch)
            errors.add_metric([ns], stats.errors)
        if rest:
            groups.add_metric(["(other)"], sum(st.batches for _, st in rest))
            ops.add_metric(["(other)"], sum(st.ops for _, st in rest))
            seconds.add_metric(["(other)"], sum(st.seconds for _, st in rest))
            largest.add_metric(["(other)"], max(st.largest_batch for _, st in rest))
            errors.add_metric(["(other)"], sum(st.errors for _, st in rest))
        yield from (groups, ops, seconds, largest, errors)
        yield GaugeMetricFamily("rtdb_open_namespaces", "Namespaces open in this process.", value=len(stores))


def registry_for(sources: Sources) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RtdbCollector(sources))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def merge(texts: list[str]) -> bytes:
    """Several processes' ``/metrics`` texts as one: the samples of a name and label set are
    added (gauges too: connections and open namespaces add up across workers), except
    ``rtdb_commit_largest_group``, whose largest value is kept."""
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            acc = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if family.name == "rtdb_commit_largest_group":
                    acc[key] = max(acc.get(key, 0.0), sample.value)
                else:
                    acc[key] = acc.get(key, 0.0) + sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)

    class Merged:
        def collect(self) -> Iterator[Metric]:
            return iter(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())
    return generate_latest(registry)
