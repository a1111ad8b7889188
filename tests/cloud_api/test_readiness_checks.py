"""Liveness and readiness: the checks of cloud_api.readiness without HTTP, then /health and
/ready in process. The same against real InfluxDB and Mosquitto: tests/integration."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from typer.testing import CliRunner

from cloud_api.errors import ConfigError
from cloud_api.ingest import IngestStats, LatencyWindow
from cloud_api.readiness import Readiness
from tests.cloud_api.api_kit import Api


@dataclass
class FakeIngest:
    stats: IngestStats = field(default_factory=lambda: IngestStats(connected=True,
                                                                   subscribed=True))
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    lag: float = 0.0

    def lag_s(self) -> float:
        return self.lag


class Store:
    """A time-series store whose ping answers, refuses, raises or hangs, as asked."""

    flavour = "fake"

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.raises: Exception | None = None
        self.hang = threading.Event()  # set: ping blocks until released
        self.release = threading.Event()
        self.pings = 0

    def ping(self) -> bool:
        self.pings += 1
        if self.hang.is_set():
            self.release.wait(10)
        if self.raises is not None:
            raise self.raises
        return self.answer

    def write(self, lines: Any) -> None:
        raise AssertionError("readiness never writes")

    def query(self, influxql: str) -> list[dict[str, Any]]:
        raise AssertionError("readiness never queries")

    def close(self) -> None:
        pass


@pytest.fixture
def worker() -> Iterator[threading.Thread]:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="fake-ingest", daemon=True)
    t.start()
    yield t
    stop.set()
    t.join(5)


def _failed(ready: Readiness) -> dict[str, str]:
    report = ready()
    return {c.name: c.reason for c in report.checks if not c.ok}


def test_all_checks_pass_and_are_listed_in_order(worker: threading.Thread) -> None:
    report = Readiness(Store(), FakeIngest(), worker)()
    assert report.ok
    assert [c.name for c in report.checks] == ["ingest_worker", "broker", "influxdb",
                                               "ingest_lag"]
    body = report.to_json()
    assert body["status"] == "ready"
    assert body["checks"]["influxdb"] == {"ok": True, "reason": "answers ping"}


def test_without_ingest_only_influxdb_is_checked() -> None:
    report = Readiness(Store())()
    assert report.ok and [c.name for c in report.checks] == ["influxdb"]
    down = Readiness(Store(answer=False))()
    assert not down.ok and down.to_json()["status"] == "not ready"


def test_ingest_worker_not_started_stopped_or_stalled(worker: threading.Thread) -> None:
    ingest = FakeIngest()
    assert _failed(Readiness(Store(), ingest)) == {"ingest_worker": "not started"}

    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    assert "stopped" in _failed(Readiness(Store(), ingest, done))["ingest_worker"]

    now = [1000.0]
    ready = Readiness(Store(), ingest, worker, stall_s=30, clock=lambda: now[0])
    ingest.stats.loop_at = 1000.0 - 29.5
    assert ready().ok, "within the limit"
    ingest.stats.loop_at = 1000.0 - 31
    assert _failed(ready) == {"ingest_worker": "loop stalled for 31 s (limit 30 s)"}
    ingest.stats.loop_at = now[0]  # the loop went round again
    assert ready().ok


def test_broker_must_be_connected_and_subscribed(worker: threading.Thread) -> None:
    ingest = FakeIngest()
    ready = Readiness(Store(), ingest, worker)
    ingest.stats.subscribed = False
    assert _failed(ready) == {"broker": "connected, not subscribed"}
    ingest.stats.connected = False
    assert _failed(ready) == {"broker": "not connected"}


def test_ingest_lag_over_the_limit(worker: threading.Thread) -> None:
    ingest = FakeIngest(lag=30.0)
    ready = Readiness(Store(), ingest, worker, max_lag_s=30)
    assert ready().ok, "at the limit is still ready"
    ingest.lag = 42.25
    assert _failed(ready) == {"ingest_lag": "oldest message in hand 42.2 s (limit 30 s)"}


def test_a_lag_that_cannot_be_read_is_not_ready(worker: threading.Thread) -> None:
    class Broken(FakeIngest):
        def lag_s(self) -> float:
            raise RuntimeError("boom")

    assert _failed(Readiness(Store(), Broken(), worker)) == {
        "ingest_lag": "unknown: RuntimeError"}


def test_influxdb_ping_refused_or_raising_is_not_ready_and_never_raises() -> None:
    store = Store(answer=False)
    ready = Readiness(store)
    assert _failed(ready) == {"influxdb": "no answer to ping (down or not InfluxDB)"}
    store.raises = OSError("unreachable")
    assert _failed(ready) == {"influxdb": "ping failed: OSError"}
    store.raises, store.answer = None, True
    assert ready().ok, "back"


def test_a_hung_ping_is_given_up_after_the_timeout_and_not_repeated() -> None:
    store = Store()
    store.hang.set()
    ready = Readiness(store, ping_timeout_s=0.2)
    try:
        t0 = time.monotonic()
        assert _failed(ready) == {"influxdb": "no answer to ping within 0.2 s"}
        assert _failed(ready) == {"influxdb": "no answer to ping within 0.2 s"}
        assert time.monotonic() - t0 < 2
        assert store.pings == 1, "one ping in flight at a time: the second call waited on it"
    finally:
        store.hang.clear()
        store.release.set()
    deadline = time.monotonic() + 5
    while not ready().ok:  # the hung ping ends: its answer counts
        assert time.monotonic() < deadline, "readiness did not recover"
    assert store.pings == 1
    assert ready().ok and store.pings == 2, "the next call pings afresh"


# -- over HTTP, in process ---------------------------------------------------------------

def test_health_is_liveness_only_and_asks_nothing_of_influxdb(api: Api,
                                                              monkeypatch: Any) -> None:
    def no_ping() -> bool:
        raise AssertionError("/health must not ping InfluxDB")

    monkeypatch.setattr(api.store, "ping", no_ping)
    api.ctx.ingest_status = lambda: {"subscribed": True, "messages": 3}
    resp = api.client.get("/health")  # no token
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "ingest": {"subscribed": True, "messages": 3}}


def test_ready_is_200_or_503_with_each_check_and_needs_no_token(
        api: Api, worker: threading.Thread) -> None:
    resp = api.client.get("/ready")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready",
                           "checks": {"influxdb": {"ok": True, "reason": "answers ping"}}}

    ingest = FakeIngest(lag=99.0)
    store = Store(answer=False)
    api.ctx.readiness = Readiness(store, ingest, worker)
    resp = api.client.get("/ready")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert {n for n, c in checks.items() if not c["ok"]} == {"influxdb", "ingest_lag"}
    assert checks["broker"] == {"ok": True, "reason": "connected and subscribed"}
    assert api.client.get("/health").status_code == 200, "liveness is not readiness"

    store.answer, ingest.lag = True, 0.0
    assert api.client.get("/ready").status_code == 200


# -- the option ---------------------------------------------------------------------------

def test_ready_max_lag_option_reaches_the_settings(monkeypatch: Any) -> None:
    import cloud_api.app
    from vigie.cli import app as cli

    seen: list[float] = []

    def fake_run(settings: cloud_api.app.CloudSettings) -> int:
        seen.append(settings.ready_max_lag_s)
        return 0

    monkeypatch.setattr(cloud_api.app, "run_cloud", fake_run)
    runner = CliRunner()
    assert runner.invoke(cli, ["cloud", "run", "--ready-max-lag", "12.5"]).exit_code == 0
    assert runner.invoke(cli, ["cloud", "run"]).exit_code == 0
    assert seen == [12.5, 30.0]
    assert runner.invoke(cli, ["cloud", "run", "--ready-max-lag", "0"]).exit_code == 2
    with pytest.raises(ConfigError, match="ready-max-lag"):
        cloud_api.app.CloudSettings(ready_max_lag_s=0)
