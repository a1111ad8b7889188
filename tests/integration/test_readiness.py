"""/health, /ready and /metrics of the real ``vigie cloud run`` with real InfluxDB and
Mosquitto: readiness follows the outages (and /health does not), the metrics parse and
count what went through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cloud, wait_for, write_replay
from vigie.contract import observations_topic
from vigie.services import Services

pytestmark = pytest.mark.integration

CHECKS = {"ingest_worker", "broker", "influxdb", "ingest_lag"}


@pytest.fixture
def anonymous(cloud: Cloud) -> Iterator[httpx.Client]:
    """No token: /health, /ready and /metrics are for probes and scrapers."""
    with httpx.Client(base_url=str(cloud.api.base_url), timeout=10) as client:
        yield client


def _ready(client: httpx.Client) -> tuple[int, dict[str, Any]]:
    resp = client.get("/ready")
    return resp.status_code, resp.json()["checks"]


def _failing(client: httpx.Client) -> set[str]:
    status, checks = _ready(client)
    failing = {name for name, c in checks.items() if not c["ok"]}
    assert (status == 503) == bool(failing), (status, checks)
    return failing


def test_ready_follows_influxdb_and_the_broker_while_health_stays_ok(
        services: Services, cloud: Cloud, anonymous: httpx.Client) -> None:
    _, checks = wait_for(lambda: (r := _ready(anonymous))[0] == 200 and r, 30, "ready")
    assert set(checks) == CHECKS and all(c["ok"] for c in checks.values()), checks

    services.influx.stop()
    wait_for(lambda: _failing(anonymous) == {"influxdb"}, 30, "503 naming influxdb")
    assert "ping" in _ready(anonymous)[1]["influxdb"]["reason"]
    health = anonymous.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["ingest"]["subscribed"] is True
    services.influx.start()
    wait_for(lambda: _failing(anonymous) == set(), 30, "ready again after InfluxDB")

    services.mosquitto.stop()
    wait_for(lambda: _failing(anonymous) == {"broker"}, 30, "503 naming the broker")
    assert _ready(anonymous)[1]["broker"]["reason"] == "not connected"
    assert anonymous.get("/health").status_code == 200
    services.mosquitto.start()
    wait_for(lambda: _failing(anonymous) == set(), 30, "ready again after the broker")


def _scrape(client: httpx.Client) -> dict[str, list[Any]]:
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return {f.name: f.samples for f in text_string_to_metric_families(resp.text)}


def _one(metrics: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    values = [s.value for s in metrics.get(name, []) if labels.items() <= s.labels.items()]
    return values[0] if len(values) == 1 else None


def test_metrics_parse_and_count_the_chain(services: Services, cloud: Cloud,
                                           anonymous: httpx.Client, gateway_factory: Any,
                                           tmp_path: Path) -> None:
    families = set(_scrape(anonymous))
    assert families >= {
        "vigie_ingest_messages", "vigie_readings_stored", "vigie_ingest_lag_seconds",
        "vigie_quarantined", "vigie_alerts_opened", "vigie_ingest_write_retries",
        "vigie_ingest_connected", "vigie_influxdb_up", "vigie_gateway_outbox_depth",
        "vigie_gateway_online", "vigie_reading_to_store_latency_p50_seconds",
        "vigie_reading_to_store_latency_p99_seconds"}, families

    replay = tmp_path / "r.jsonl"
    write_replay(replay, 40, devices=2)
    # registered with its patients by the fixture, as a care team does first
    gw = gateway_factory("gw-metrics", replay, patients={"dev-0": "p-0", "dev-1": "p-1"})
    assert gw.start().wait(60) == 0, gw.log()
    bad = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    bad.connect("127.0.0.1", services.mosquitto.port)
    bad.loop_start()
    try:
        bad.publish(observations_topic("gw-metrics"), b"not json", qos=1).wait_for_publish(10)
    finally:
        bad.loop_stop()
        bad.disconnect()

    def settled() -> dict[str, list[Any]] | None:
        m = _scrape(anonymous)
        done = (_one(m, "vigie_readings_stored") == 40
                and sum(s.value for s in m["vigie_quarantined"]) >= 1
                and _one(m, "vigie_gateway_online", gateway="gw-metrics") == 0)
        return m if done else None

    m = wait_for(settled, 60, "40 readings stored, one payload quarantined, gateway gone")
    health = anonymous.get("/health").json()["ingest"]
    assert _one(m, "vigie_ingest_messages") == health["messages"] > 0
    assert sum(s.value for s in m["vigie_quarantined"]) == health["quarantined"] == 1
    assert _one(m, "vigie_gateway_outbox_depth", gateway="gw-metrics", site="site-1") == 0
    assert _one(m, "vigie_ingest_connected") == 1 and _one(m, "vigie_influxdb_up") == 1
    assert _one(m, "vigie_ingest_lag_seconds") is not None
    p50 = _one(m, "vigie_reading_to_store_latency_p50_seconds")
    p99 = _one(m, "vigie_reading_to_store_latency_p99_seconds")
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    text = anonymous.get("/metrics").text
    assert "p-0" not in text and "p-1" not in text, "no patient id in the metrics"
