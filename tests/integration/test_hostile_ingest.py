"""Ingest against hostile and broken input, on the real broker, InfluxDB and SQLite: no
message stops or delays alerting for anyone else, and nothing refused is dropped."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from alerting.engine import Engine
from alerting.seam import AlertSignal
from cloud_api.app import CloudSettings, build
from cloud_api.db import Alert, Quarantine
from cloud_api.influx import InfluxV1
from cloud_api.ingest import Ingest
from cloud_api.stages.refusal import code_of
from cloud_api.stages.store import write_isolating
from tests.alerting.alerting_kit import reading
from tests.conftest import Cloud, register, wait_for, write_replay
from tests.dbkit import database_url
from vigie.contract import Kind, Reading, observations_topic, status_topic
from vigie.services import Services

pytestmark = pytest.mark.integration


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _row(patient: str, value: float, at: datetime, n: int, gateway_received: datetime | None
         = None) -> dict[str, object]:
    received = gateway_received or at
    return {"id": f"{n:032x}", "device": f"dev-{patient}", "patient": patient, "seq": n,
            "kind": "glucose", "value": value, "unit": "mg/dL",
            "measured_at": at.isoformat().replace("+00:00", "Z"),
            "received_at": received.isoformat().replace("+00:00", "Z"), "device_time": None,
            "clock_offset_s": 0, "tz": None, "time_trusted": True, "flags": []}


def _batch(gateway: str, *rows: dict[str, object]) -> bytes:
    return json.dumps({"v": 1, "gateway": gateway, "site": "site-1",
                       "sent_at": _now().isoformat().replace("+00:00", "Z"),
                       "readings": list(rows)}).encode()


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(services: Services) -> Iterator[Publisher]:
    p = Publisher(services.mosquitto.port)
    yield p
    p.close()


def _urgent_lows(cloud: Cloud) -> set[str]:
    return {a["patient"] for a in cloud.api.get("/alerts").json()
            if a["rule"] == "dm.hypoglycaemia" and a["severity"] == "urgent"}


def test_hostile_messages_neither_stop_alerting_nor_a_restart(
        cloud: Cloud, publisher: Publisher) -> None:
    """The attacks of issue 11 from one gateway, then an ordinary low of two patients (one
    of them the patient the attacker dated in 2200): both page, and the cloud restarts."""
    gw = "gw-hostile"
    cloud.register(gw, "p-a", "p-b")
    obs = observations_topic(gw)
    now = _now()
    publisher.send(obs, b"[" * 5000)  # RecursionError in the parser before
    publisher.send(obs, b'{"v":1,"gateway":"gw-hostile","readings":' + b"[" * 3000 + b"]}")
    publisher.send(obs, _batch(gw, {**_row("p-a", 100, now, 1), "seq": 2**70}))
    huge = _batch(gw, {**_row("p-a", 100, now, 2), "value": 12345})
    publisher.send(obs, huge.replace(b"12345", b"9" * 400))  # no float holds it
    publisher.send(obs, huge.replace(b"12345", b"9" * 5000))  # over Python's digit limit
    publisher.send(status_topic(gw), json.dumps({"state": "online", "outbox": 2**64}).encode(),
                   retain=True)  # an SQLite overflow before, and redelivered at every start
    publisher.send(obs, _batch(gw, _row("p-a", 120, datetime(2200, 1, 1, tzinfo=UTC), 3,
                                        datetime(2200, 1, 1, tzinfo=UTC))))
    publisher.send(obs, _batch(gw, _row("p-a", 120, datetime(2200, 1, 1, tzinfo=UTC), 4,
                                        now)))  # a gateway clock right, a device's not
    time.sleep(11)  # let a tick (every 10 s) prune with whatever got in
    t = _now()
    publisher.send(obs, _batch(gw, _row("p-a", 35, t, 5), _row("p-b", 35, t, 6)))
    assert wait_for(lambda: _urgent_lows(cloud) == {"p-a", "p-b"}, 15, "both lows paged")
    rows = cloud.api.get("/quarantine").json()
    codes = sorted(r["reason"].split(":")[0] for r in rows)
    assert codes == ["not-json", "schema", "schema", "schema", "time", "time", "too-deep",
                     "too-deep"], codes
    assert cloud.proc is not None and cloud.proc.poll() is None, "ingest still running"
    cloud.stop()
    cloud.start()  # the retained status comes again: refused again, the start goes on
    assert cloud.api.get("/health").json()["ingest"]["subscribed"]


def test_random_bytes_and_json_on_every_topic_then_a_low_pages(
        cloud: Cloud, publisher: Publisher) -> None:
    """A fuzz run: 300 random payloads, bytes and JSON trees, some shaped like batches, on
    the observations, status and alarms topics of one gateway; then a low of another
    patient pages within seconds, and every message ended acknowledged."""
    gw = "gw-fuzz"
    cloud.register(gw, "p-fuzz")
    cloud.register("gw-ok", "p-ok")
    rng = random.Random(11)
    topics = [f"vigie/v1/gateways/{gw}/{s}" for s in ("observations", "status", "alarms")]
    for i in range(300):
        kind = i % 4
        if kind == 0:
            payload = rng.randbytes(rng.randrange(300))
        elif kind == 1:
            payload = json.dumps(_tree(rng, 0)).encode()
        elif kind == 2:  # shaped like a batch, readings anything
            payload = json.dumps({"v": 1, "gateway": gw, "sent_at": "2026-11-01T10:00:00Z",
                                  "readings": [_tree(rng, 1) for _ in range(3)]}).encode()
        else:  # a real reading with one field replaced by anything
            row = _row("p-fuzz", 100, _now(), i)
            row[rng.choice(sorted(row))] = _tree(rng, 2)
            payload = _batch(gw, row)
        publisher.send(rng.choice(topics), payload if i % 50 else b"[" * 10_000)
    t = _now()
    publisher.send(observations_topic("gw-ok"), _batch("gw-ok", _row("p-ok", 35, t, 1)))
    assert wait_for(lambda: "p-ok" in _urgent_lows(cloud), 20, "the low paged")
    health = cloud.api.get("/health").json()["ingest"]
    assert health["messages"] >= 301 and cloud.proc is not None and cloud.proc.poll() is None


_KEYS = ["v", "gateway", "readings", "state", "outbox", "alarms", "id", "seq", "value",
         "kind", "unit", "measured_at", "", "\u0000"]
_LEAVES: list[object] = [None, True, False, 0, -1, 2**63, 2**64, -(2**63) - 1, 1.5, 1e308,
                         -0.0, "", "x" * 300, "2200-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                         "glucose", "mg/dL", "\u0000", "é"]


def _tree(rng: random.Random, depth: int) -> object:
    """A random JSON value: leaves chosen among edge cases, up to about ten levels deep."""
    if depth > 10 or rng.random() < 0.3:
        return rng.choice(_LEAVES)
    if rng.random() < 0.5:
        return [_tree(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(_KEYS): _tree(rng, depth + 1) for _ in range(rng.randrange(5))}


class CountingInflux(InfluxV1):
    writes: int = 0

    def write(self, lines: Sequence[str]) -> None:
        self.writes += 1
        super().write(lines)


def test_one_bad_point_among_20000_is_found_by_bisection(services: Services) -> None:
    store = CountingInflux(services.influx.url, "bisect")
    store.ensure_database()
    start = _now() - timedelta(days=2)
    good = [reading(Kind.GLUCOSE, 100.0, start + timedelta(seconds=i), pid=f"p-{i % 500}",
                    rid=f"{i:032x}") for i in range(20_000)]
    bad = reading(Kind.GLUCOSE, 100.0, datetime(9999, 1, 1, tzinfo=UTC), pid="p-9999",
                  received=datetime(9999, 1, 1, tzinfo=UTC), rid="f" * 32)
    readings = [(r, "site-1") for r in [*good[:12_345], bad, *good[12_345:]]]
    began = time.perf_counter()
    kept, refused = write_isolating(store, readings, time.time_ns())
    took = time.perf_counter() - began
    assert [r.id for (r, _), _ in refused] == ["f" * 32]
    assert len(kept) == 20_000
    assert store.writes <= 2 * math.ceil(math.log2(len(readings))) + 1, store.writes
    print(f"bisection: {store.writes} writes, {took:.2f} s for 20,001 points")
    count = store.query("SELECT COUNT(value) FROM observation")
    assert count[0]["values"][0][1] == 20_000
    store.close()


class Exploding:
    """The real engine, except that evaluating one patient's reading raises: a bug in a rule
    that only this patient's data reaches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def evaluate(self, r: Reading) -> list[AlertSignal]:
        if r.patient_id == "p-poison":
            raise ZeroDivisionError("a rule's bug")
        return self.engine.evaluate(r)

    def prepare(self, readings: Sequence[Reading]) -> None:
        self.engine.prepare(readings)

    def forget(self, patient_ids: Iterable[str]) -> None:
        self.engine.forget(patient_ids)


def test_a_message_whose_handling_fails_is_quarantined_alone(services: Services,
                                                             tmp_path: Path,
                                                             publisher: Publisher) -> None:
    """Three messages in one batch, the middle one making the rules raise: the batch is
    halved until that message stands alone; it is quarantined as poison and acknowledged,
    and the two others are stored and page."""
    ctx, ingest = build(CloudSettings(mqtt=services.mqtt, influx_url=services.influx.url,
                                      influx_db="poison",
                                      db_url=database_url(tmp_path),
                                      secret_file=str(tmp_path / "api-secret")))
    assert isinstance(ingest, Ingest) and isinstance(ingest.evaluator, Engine)
    register(database_url(tmp_path), "gw-p", "p-1", "p-poison", "p-2")
    ingest.evaluator = Exploding(ingest.evaluator)
    ingest.start()
    try:
        wait_for(lambda: ingest.stats.subscribed, 10, "ingest subscribed")
        t = _now()
        for n, pid in enumerate(["p-1", "p-poison", "p-2"], start=1):
            publisher.send(observations_topic("gw-p"), _batch("gw-p", _row(pid, 35, t, n)))
        wait_for(lambda: ingest._queue.qsize() == 3, 10, "three messages in hand")
        batch = [msg for _, msg in ingest._take(timeout=1)]
        assert len(batch) == 3
        stop = threading.Event()
        ingest._guarded(partial(ingest._process_isolating, batch, stop, set()), stop)
    finally:
        ingest.stop()
    with ctx.sessions() as session:
        alerts = {a.patient_id for a in session.scalars(select(Alert))}
        quarantined = list(session.scalars(select(Quarantine)))
    assert alerts == {"p-1", "p-2"}
    assert [code_of(q) for q in quarantined] == ["poison"]
    assert "p-poison" in quarantined[0].payload and "ZeroDivisionError" in quarantined[0].reason
    assert ingest.stats.quarantined_by_reason == {"poison": 1}
    assert len(ctx.store.query("SELECT value FROM observation")[0]["values"]) == 3
    ctx.store.close()
    ctx.sessions.kw["bind"].dispose()


def test_a_gateway_cannot_choose_its_site_nor_reach_another_sites_patient(
        cloud: Cloud, publisher: Publisher) -> None:
    """The site in a payload is checked against the registry, never believed; MQTT content
    creates no site, patient or gateway and moves none; an unregistered gateway is listed
    for the admins and accepted once registered."""
    cloud.register("gw-a", "p-a", site="site-a")
    cloud.register("gw-b", "p-b", site="site-b")
    t = _now()
    obs = observations_topic("gw-a")

    def batch(site: str | None, *rows: dict[str, object], gateway: str = "gw-a") -> bytes:
        body = json.loads(_batch(gateway, *rows))
        body["site"] = site
        return json.dumps(body).encode()

    publisher.send(obs, batch("site-b", _row("p-b", 35, t, 1)))  # claims the other site
    publisher.send(obs, batch(None, _row("p-b", 35, t, 2)))  # another site's patient
    publisher.send(obs, batch("site-new", _row("p-new", 35, t, 3)))  # a site made up
    publisher.send(status_topic("gw-a"), json.dumps({"state": "online", "site": "site-b"})
                   .encode())
    publisher.send(observations_topic("gw-x"), batch("site-b", _row("p-b", 35, t, 4),
                                                     gateway="gw-x"))
    publisher.send(obs, batch(None, _row("p-a", 35, t, 5)))  # the one allowed
    assert wait_for(lambda: _urgent_lows(cloud) == {"p-a"}, 15, "p-a's low paged")
    rows = wait_for(lambda: len(r := cloud.api.get("/quarantine").json()) >= 4 and r, 10,
                    "four refusals")
    assert sorted(r["reason"].split(":")[0] for r in rows) == [
        "foreign-patient", "unregistered-gateway", "wrong-site", "wrong-site"]
    assert {s["id"] for s in cloud.api.get("/sites").json()} == {"site-a", "site-b"}
    gateways = {g["id"]: g for g in cloud.api.get("/gateways").json()}
    assert set(gateways) == {"gw-a", "gw-b"} and gateways["gw-a"]["site"] == "site-a"
    assert wait_for(lambda: gateways["gw-a"]["status"] == "online" or
                    cloud.api.get("/gateways/gw-a").json()["status"] == "online", 10, "status")
    assert cloud.api.get("/gateways/gw-a").json()["site"] == "site-a"
    pending = cloud.api.get("/gateways/pending").json()
    assert [(p["id"], p["claimed_site"], p["messages"]) for p in pending] == [
        ("gw-x", "site-b", 1)]

    made = cloud.api.post("/gateways", json={"id": "gw-x", "site": "site-b"})
    assert made.status_code == 201, made.text
    assert cloud.api.get("/gateways/pending").json() == []
    publisher.send(observations_topic("gw-x"), batch("site-b", _row("p-b", 35, _now(), 6),
                                                     gateway="gw-x"))
    assert wait_for(lambda: _urgent_lows(cloud) == {"p-a", "p-b"}, 15, "p-b's low paged")


def test_readings_taken_before_registration_are_stored_once_registered(
        cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> None:
    """A gateway installed before the care team registered it: its readings are refused
    (quarantined, listed) but not confirmed, so it keeps them; registered, then restarted,
    it sends them again and they are stored, each once."""
    assert cloud.api.post("/sites", json={"id": "site-1", "name": "Home"}).status_code == 201
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 40)
    gw = gateway_factory("gw-early", replay, registry=None, exit_when_done=False).start()
    wait_for(lambda: cloud.api.get("/gateways/pending").json(), 30, "the gateway pending")
    wait_for(lambda: len(cloud.api.get("/quarantine").json()) >= 1, 30, "refusals")
    assert cloud.ids() == []
    gw.stop()
    made = cloud.api.post("/gateways", json={"id": "gw-early", "site": "site-1"})
    assert made.status_code == 201, made.text
    time.sleep(5.5)  # sent at least resend_after_reconnect_s (5 s) before the next connection
    gw.start()
    ids = wait_for(lambda: len(got := cloud.ids()) >= 40 and got, 60, "the 40 readings stored")
    assert len(ids) == len(set(ids)) == 40
