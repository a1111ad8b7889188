"""The backbone end to end: real gateway and cloud processes, real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Cloud, wait_for, write_replay
from vigie.contract import observations_topic
from vigie.services import Services

pytestmark = pytest.mark.integration


def _expected_ids(gw_dir: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(gw_dir / "outbox.sqlite3") as db:
        return {r[0] for r in db.execute("SELECT id FROM seen")}


def _assert_exactly_once(cloud: Cloud, gw_dirs: list[Path], n: int) -> None:
    expected: set[str] = set()
    for d in gw_dirs:
        expected |= _expected_ids(d)
    assert len(expected) == n, "every replayed reading was taken once by a gateway"
    ids = wait_for(lambda: (got := cloud.ids()) and len(set(got)) >= n and got, 60,
                   f"{n} readings in InfluxDB")
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    assert not dupes, f"{len(dupes)} readings stored more than once"
    assert set(ids) == expected, f"missing: {len(expected - set(ids))}"


def test_readings_land_exactly_once(services: Services, cloud: Cloud, gateway_factory: Any,
                                    tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 1500, devices=3)
    gw = gateway_factory("gw-a", replay, patients={"dev-0": "p-0", "dev-1": "p-1"}).start()
    assert gw.wait(60) == 0, gw.log()
    _assert_exactly_once(cloud, [gw.workdir], 1500)
    obs = cloud.api.get("/patients/p-0/observations",
                        params={"start": "2026-01-01T00:00:00Z"}).json()
    assert len(obs) == 500 and all(o["kind"] == "glucose" for o in obs)
    assert cloud.api.get("/gaps").json() == []
    gws = cloud.api.get("/gateways").json()
    assert [g["id"] for g in gws] == ["gw-a"] and gws[0]["site"] == "site-1"


def test_ingest_killed_mid_stream_loses_nothing(services: Services, cloud: Cloud,
                                                gateway_factory: Any, tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 2000)
    gw = gateway_factory("gw-k", replay, rate=800).start()
    wait_for(lambda: len(cloud.ids()) > 200, 30, "first readings stored")
    cloud.kill()
    time.sleep(1.0)  # the gateway keeps publishing; the broker queues for the ingest session
    cloud.start()
    assert gw.wait(60) == 0, gw.log()
    _assert_exactly_once(cloud, [gw.workdir], 2000)


def test_broker_restart_mid_stream_loses_nothing(services: Services, cloud: Cloud,
                                                 gateway_factory: Any, tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 2000)
    gw = gateway_factory("gw-b", replay, rate=800).start()
    wait_for(lambda: len(cloud.ids()) > 200, 30, "first readings stored")
    services.mosquitto.restart()
    assert gw.wait(90) == 0, gw.log()
    _assert_exactly_once(cloud, [gw.workdir], 2000)
    assert "disconnected from broker" in gw.log() or "cannot reach broker" in gw.log()


def test_influxdb_outage_loses_nothing(services: Services, cloud: Cloud, gateway_factory: Any,
                                       tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 1500)
    gw = gateway_factory("gw-i", replay, rate=800).start()
    wait_for(lambda: len(cloud.ids()) > 100, 30, "first readings stored")
    services.influx.stop()
    time.sleep(2.0)
    services.influx.start()
    assert gw.wait(60) == 0, gw.log()
    _assert_exactly_once(cloud, [gw.workdir], 1500)
    health = cloud.api.get("/health").json()
    assert health["ingest"]["write_retries"] > 0, "the outage was really seen by ingest"


def test_gateway_kill9_and_restart_loses_nothing(services: Services, cloud: Cloud,
                                                 gateway_factory: Any, tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 1500)
    gw = gateway_factory("gw-g", replay, rate=600).start()
    wait_for(lambda: len(cloud.ids()) > 100, 30, "first readings stored")
    gw.kill()
    taken_before = len(_expected_ids(gw.workdir))
    assert 0 < taken_before < 1500
    # the broker publishes the retained last will once the keepalive (2 s) lapses
    wait_for(lambda: cloud.api.get("/gateways").json()[0]["status"] == "offline", 15,
             "gateway marked offline by its last will")
    gw.start()
    assert gw.wait(60) == 0, gw.log()
    _assert_exactly_once(cloud, [gw.workdir], 1500)


def _publish(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_malformed_payloads_are_quarantined_not_fatal(services: Services, cloud: Cloud) -> None:
    cloud.register("gw-q", "p1")
    topic = observations_topic("gw-q")
    good = {"id": "0" * 31 + "1", "device": "d1", "patient": "p1", "seq": 1,
            "kind": "glucose", "value": 50.0, "unit": "mg/dL",
            "measured_at": "2026-11-01T10:00:00Z", "received_at": "2026-11-01T10:00:01Z",
            "device_time": None, "clock_offset_s": 0, "tz": None, "time_trusted": True,
            "flags": []}
    impossible = dict(good, id="0" * 31 + "2", seq=2, value=4000.0)
    wrong_unit = dict(good, id="0" * 31 + "3", seq=3, unit="mmol/L")
    batch = {"v": 1, "gateway": "gw-q", "sent_at": "2026-11-01T10:00:02Z",
             "readings": [good, impossible, wrong_unit, "nonsense"]}
    _publish(services.mosquitto.port, topic, b"\xff\xfe not json")
    _publish(services.mosquitto.port, topic, json.dumps({"v": 99}).encode())
    _publish(services.mosquitto.port, topic, json.dumps(batch).encode())
    rows = wait_for(lambda: len(r := cloud.api.get("/quarantine").json()) >= 5 and r, 20,
                    "five quarantine records")
    reasons = " | ".join(r["reason"] for r in rows)
    assert "not JSON" in reasons and "schema version" in reasons
    assert "outside the possible range" in reasons and "must be in 'mg/dL'" in reasons
    assert "must be a JSON object" in reasons
    assert wait_for(lambda: cloud.ids() == ["0" * 31 + "1"], 20, "the good reading stored")
    alerts = cloud.api.get("/alerts").json()
    # a low measured weeks ago is stale: no clinical alert, certainly no urgent page
    assert [a for a in alerts if a["category"] == "clinical"] == []
    assert cloud.proc is not None and cloud.proc.poll() is None, "ingest still running"


def test_alert_is_raised_stored_and_acknowledged(services: Services, cloud: Cloud,
                                                 gateway_factory: Any, tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    replay.write_text(json.dumps({"device": "g1", "kind": "glucose", "value": 2.8,
                                  "unit": "mmol/L", "time": now + "Z"}) + "\n")
    gw = gateway_factory("gw-al", replay, patients={"g1": "p-9"}).start()
    assert gw.wait(30) == 0, gw.log()
    alerts = wait_for(lambda: [a for a in cloud.api.get("/alerts").json()
                               if a["rule"] == "dm.hypoglycaemia"], 20, "an alert")
    assert [(a["rule"], a["severity"], a["late"]) for a in alerts] == [
        ("dm.hypoglycaemia", "urgent", False)]
    assert alerts[0]["value"] == pytest.approx(2.8 * 18.016, abs=0.01)
    ack = cloud.api.post(f"/alerts/{alerts[0]['id']}/acknowledge",
                         json={"who": "nurse-1", "comment": "resugared"})
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    again = cloud.api.post(f"/alerts/{alerts[0]['id']}/acknowledge", json={"who": "nurse-1"})
    assert again.status_code == 409
    hist = cloud.api.get(f"/alerts/{alerts[0]['id']}/history").json()
    assert [(h["who"], h["to_state"]) for h in hist] == [("system", "open"),
                                                         (cloud.username, "acknowledged")]


def test_sequence_gaps_are_reported(services: Services, cloud: Cloud) -> None:
    cloud.register("gw-gap", "p1")
    topic = observations_topic("gw-gap")

    def batch(*seqs: int) -> bytes:
        rows: list[dict[str, object]] = [
            {"id": f"{s:032x}", "device": "scale-1", "patient": "p1", "seq": s,
             "kind": "weight", "value": 80.0, "unit": "kg",
             "measured_at": f"2026-11-01T10:00:{s:02d}Z",
             "received_at": "2026-11-01T10:01:00Z", "device_time": None,
             "clock_offset_s": 0, "tz": None, "time_trusted": True, "flags": []}
            for s in seqs]
        return json.dumps({"v": 1, "gateway": "gw-gap", "sent_at": "2026-11-01T10:01:00Z",
                           "readings": rows}).encode()

    _publish(services.mosquitto.port, topic, batch(1, 2))
    _publish(services.mosquitto.port, topic, batch(6))
    gaps = wait_for(lambda: cloud.api.get("/gaps").json(), 20, "a gap")
    assert [(g["device"], g["first_seq"], g["last_seq"], g["missing"]) for g in gaps] == [
        ("scale-1", 3, 5, 3)]
    _publish(services.mosquitto.port, topic, batch(4))  # a late arrival splits the gap
    wait_for(lambda: len(cloud.api.get("/gaps").json()) == 2, 20, "the gap split")


def test_a_patients_own_threshold_set_in_the_api_applies(services: Services, cloud: Cloud,
                                                          gateway_factory: Any,
                                                          tmp_path: Path) -> None:
    """A physician lowers nothing and raises the level-2 threshold of one patient to 65 mg/dL
    through the API; ingest picks it up on its tick and a 61 mg/dL reading pages as urgent."""
    assert cloud.api.post("/sites", json={"id": "site-1", "name": "Home 1"}).status_code == 201
    made = cloud.api.post("/patients", json={
        "id": "p-7", "site": "site-1", "profile": ["diabetes"],
        "settings": {"thresholds": {"dm.hypoglycaemia": {"l2": 65}}}})
    assert made.status_code == 201, made.text
    time.sleep(11)  # one ingest tick (10 s) syncs the profiles into the engine
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    replay = tmp_path / "r.jsonl"
    replay.write_text(json.dumps({"device": "g7", "kind": "glucose", "value": 61,
                                  "unit": "mg/dL", "time": now + "Z"}) + "\n")
    gw = gateway_factory("gw-th", replay, patients={"g7": "p-7"}).start()
    assert gw.wait(30) == 0, gw.log()
    alerts = wait_for(lambda: [a for a in cloud.api.get("/alerts").json()
                               if a["rule"] == "dm.hypoglycaemia"], 20, "an alert")
    assert [(a["patient"], a["severity"]) for a in alerts] == [("p-7", "urgent")]
