"""GET /metrics in process: Prometheus text that parses, the live figures at scrape time,
gateway and site labels but no patient id, one registry per app. The real chain's metrics:
tests/integration/test_readiness.py."""

from __future__ import annotations

import warnings

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from cloud_api.api import create_app
from cloud_api.context import ApiContext
from cloud_api.db import Gateway
from tests.cloud_api.api_kit import Api, FakeStore
from tests.cloud_api.test_readiness_checks import FakeIngest

with warnings.catch_warnings():  # starlette asks for httpx2 (as in api_kit)
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

INGEST_FAMILIES = {
    # name as the parser gives it (a counter without its _total) -> type
    "vigie_ingest_messages": "counter",
    "vigie_readings_stored": "counter",
    "vigie_ingest_lag_seconds": "gauge",
    "vigie_quarantined": "counter",
    "vigie_alerts_opened": "counter",
    "vigie_ingest_write_retries": "counter",
    "vigie_ingest_connected": "gauge",
    "vigie_influxdb_up": "gauge",
    "vigie_reading_to_store_latency_p50_seconds": "gauge",
    "vigie_reading_to_store_latency_p99_seconds": "gauge",
}
GATEWAY_FAMILIES = {"vigie_gateway_outbox_depth": "gauge", "vigie_gateway_online": "gauge"}


def scrape(client: TestClient) -> dict[str, tuple[str, list[Sample]]]:
    resp = client.get("/metrics")  # no token
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(resp.text)}


def values(samples: list[Sample], label: str = "") -> dict[str, float]:
    return {s.labels.get(label, ""): s.value for s in samples}


def test_api_only_process_has_the_gateway_families(api: Api) -> None:
    with api.ctx.sessions.begin() as session:
        alpha, bravo = (session.get(Gateway, g) for g in (api.alpha.gateway, api.bravo.gateway))
        assert alpha is not None and bravo is not None
        alpha.outbox_depth, bravo.status = 17, "offline"
    got = scrape(api.client)
    assert {n: t for n, (t, _) in got.items()} == GATEWAY_FAMILIES
    depth = got["vigie_gateway_outbox_depth"][1]
    assert [(s.name, s.labels, s.value) for s in depth] == [
        ("vigie_gateway_outbox_depth", {"gateway": "gw-alpha", "site": "site-alpha"}, 17.0)
    ], "a gateway that never said its depth has no sample"
    assert values(got["vigie_gateway_online"][1], "gateway") == {"gw-alpha": 1.0,
                                                                  "gw-bravo": 0.0}


def test_ingest_figures_are_read_at_scrape_time(api: Api) -> None:
    ingest = FakeIngest(lag=2.5)
    api.ctx.ingest = ingest
    s = ingest.stats
    s.messages, s.readings_stored, s.write_retries = 7, 300, 2
    s.quarantined_by_reason.update({"schema": 3, "implausible": 1})
    s.alerts_by_rule["dm.hypoglycaemia"] = 4
    ingest.latency._values.extend([100.0, 200.0, 300.0])  # ms, as LatencyWindow.add keeps them

    got = scrape(api.client)
    assert {n: t for n, (t, _) in got.items()} == INGEST_FAMILIES | GATEWAY_FAMILIES
    one = {n: samples[0].value for n, (_, samples) in got.items() if len(samples) == 1}
    assert one["vigie_ingest_messages"] == 7
    assert got["vigie_ingest_messages"][1][0].name == "vigie_ingest_messages_total"
    assert one["vigie_readings_stored"] == 300
    assert one["vigie_ingest_write_retries"] == 2
    assert one["vigie_ingest_lag_seconds"] == 2.5
    assert one["vigie_ingest_connected"] == 1 and one["vigie_influxdb_up"] == 1
    assert one["vigie_reading_to_store_latency_p50_seconds"] == 0.2
    assert one["vigie_reading_to_store_latency_p99_seconds"] == 0.3
    assert values(got["vigie_quarantined"][1], "reason") == {"schema": 3, "implausible": 1}
    assert values(got["vigie_alerts_opened"][1], "rule") == {"dm.hypoglycaemia": 4}

    # the next scrape sees what changed since, nothing is cached
    s.messages += 1
    s.subscribed = False
    s.store_ok = False
    s.quarantined_by_reason["schema"] += 1
    got = scrape(api.client)
    assert got["vigie_ingest_messages"][1][0].value == 8
    assert got["vigie_ingest_connected"][1][0].value == 0
    assert got["vigie_influxdb_up"][1][0].value == 0
    assert values(got["vigie_quarantined"][1], "reason")["schema"] == 4


def test_no_latency_yet_gives_the_families_without_samples(api: Api) -> None:
    api.ctx.ingest = FakeIngest()
    got = scrape(api.client)
    assert got["vigie_reading_to_store_latency_p50_seconds"] == ("gauge", [])
    assert got["vigie_quarantined"] == ("counter", [])


def test_no_patient_id_and_no_token_needed(api: Api) -> None:
    api.ctx.ingest = FakeIngest()
    api.ctx.ingest.stats.alerts_by_rule["dm.hypoglycaemia"] = 1  # the patients' alerts
    with api.ctx.sessions.begin() as session:
        bravo = session.get(Gateway, api.bravo.gateway)
        assert bravo is not None
        bravo.outbox_depth = 3
    resp = api.client.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    assert "gw-bravo" in text and "site-bravo" in text, "gateways of every site, by design"
    for patient in (api.alpha.patient, api.bravo.patient):
        assert patient not in text


def test_openmetrics_when_prometheus_asks_for_it(api: Api) -> None:
    resp = api.client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.endswith("# EOF\n")


def test_each_app_has_its_own_registry(api: Api) -> None:
    """Two apps in one process (as the tests build them): no clash, each its own figures."""
    other = ApiContext(store=FakeStore(), sessions=api.ctx.sessions)
    other.ingest = FakeIngest()
    other.ingest.stats.messages = 5
    api.ctx.ingest = FakeIngest()
    with TestClient(create_app(other)) as second:
        assert scrape(second)["vigie_ingest_messages"][1][0].value == 5
    assert scrape(api.client)["vigie_ingest_messages"][1][0].value == 0
