"""Prometheus metrics (``GET /metrics``), read from the live state at scrape time.

A custom collector, not counters updated on the hot path: the ingest already keeps its
figures (``IngestStats``, ``LatencyWindow``), so a scrape reads them, and the gateways'
status and outbox depth from the relational store. Each app has its own registry (tests
build several apps in one process). Nothing here pings InfluxDB: ``vigie_influxdb_up`` is
the outcome of the ingest's last write.

Labels are gateway ids, site ids, rule ids and quarantine reason codes only: no patient id,
so the route needs no token (docs/operator.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from cloud_api.context import ApiContext
from cloud_api.db import Gateway
from cloud_api.readiness import IngestView

log = logging.getLogger(__name__)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class VigieCollector(Collector):
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        if self.ctx.ingest is not None:
            yield from self._ingest(self.ctx.ingest)
        yield from self._gateways()

    @staticmethod
    def _ingest(ingest: IngestView) -> Iterator[Metric]:
        s = ingest.stats
        yield _counter("vigie_ingest_messages_total",
                       "MQTT messages processed and acknowledged by the ingest", s.messages)
        yield _counter("vigie_readings_stored_total",
                       "Readings written to InfluxDB (readings/s: rate())", s.readings_stored)
        yield _gauge("vigie_ingest_lag_seconds",
                     "Age of the oldest MQTT message received and not yet acknowledged",
                     ingest.lag_s())
        by_reason = CounterMetricFamily("vigie_quarantined_total",
                                        "Payloads or readings quarantined, by reason code",
                                        labels=["reason"])
        for reason, n in sorted(dict(s.quarantined_by_reason).items()):
            by_reason.add_metric([reason], n)
        yield by_reason
        by_rule = CounterMetricFamily("vigie_alerts_opened_total",
                                      "Alerts opened by the rules, by rule id", labels=["rule"])
        for rule, n in sorted(dict(s.alerts_by_rule).items()):
            by_rule.add_metric([rule], n)
        yield by_rule
        yield _counter("vigie_ingest_write_retries_total",
                       "InfluxDB writes retried because InfluxDB was unavailable",
                       s.write_retries)
        yield _gauge("vigie_ingest_connected",
                     "1 when the ingest is connected to the broker and subscribed",
                     1 if s.connected and s.subscribed else 0)
        yield _gauge("vigie_influxdb_up",
                     "1 when the ingest's last InfluxDB write (or retry) succeeded",
                     1 if s.store_ok else 0)
        latency = ingest.latency.summary()
        for q in ("p50", "p99"):
            family = GaugeMetricFamily(
                f"vigie_reading_to_store_latency_{q}_seconds",
                f"Reading-to-store latency ({q}, gateway receipt to InfluxDB write) over the "
                f"last {latency['count']} readings")
            if f"{q}_ms" in latency:
                family.add_metric([], latency[f"{q}_ms"] / 1000)
            yield family

    def _gateways(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("vigie_gateway_outbox_depth",
                                  "Readings waiting in the gateway's outbox (its last status)",
                                  labels=["gateway", "site"])
        online = GaugeMetricFamily("vigie_gateway_online",
                                   "1 when the gateway's last status is online",
                                   labels=["gateway"])
        q = select(Gateway.id, Gateway.site, Gateway.status, Gateway.outbox_depth
                   ).order_by(Gateway.id)
        try:
            with self.ctx.sessions() as session:
                rows = session.execute(q).all()
        except SQLAlchemyError as exc:  # a locked database: these two are absent this time
            log.warning("gateway metrics not collected: %s", exc)
            return
        for gateway, site, status, outbox_depth in rows:
            if outbox_depth is not None:
                depth.add_metric([gateway, site or ""], outbox_depth)
            online.add_metric([gateway], 1 if status == "online" else 0)
        yield depth
        yield online


def make_registry(ctx: ApiContext) -> CollectorRegistry:
    """A registry of this app's own (not the global one) with the Vigie collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VigieCollector(ctx))
    return registry
