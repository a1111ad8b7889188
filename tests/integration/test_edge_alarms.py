"""Alarms with the internet down (issue 5, item 8), on real processes and brokers: a gateway
whose cloud broker is down pages the EHPAD's local nurse console itself; when the link
returns, the cloud learns of it and does not page a second time for the same event, while it
still pages for other events."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.alerting.notify_kit import SECRET, Receiver
from tests.conftest import Cloud, query_db, wait_for
from vigie.contract import (
    Batch,
    Kind,
    Reading,
    alarm_id,
    now_utc,
    nurse_console_topic,
    observations_topic,
)
from vigie.services import Mosquitto, Services, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
LOW = "dm.hypoglycaemia"


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "ehpad-broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


def _subscribe(port: int, topic: str) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    ready: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: got.put(m)
    client.on_subscribe = lambda *a: ready.put(True)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.get(timeout=10)
    return client, got


def _publish_low(port: int, patient: str) -> None:
    """A gateway-less batch straight to the cloud broker: the positive control."""
    now = now_utc()
    reading = Reading(id="c" * 32, gateway_id="gw-ctl", device_id="g-ctl", patient_id=patient,
                      stream_seq=1, kind=Kind.GLUCOSE, value=45.0, unit="mg/dL",
                      measured_at=now, received_at=now, device_time=None, clock_offset_s=0.0,
                      time_zone=None, time_trusted=True)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    info = client.publish(observations_topic("gw-ctl"),
                          Batch("gw-ctl", now, (reading.to_json(),), site="site-1").encode(),
                          qos=1)
    info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def _cloud_db(cloud: Cloud, sql: str) -> list[Any]:
    return query_db(cloud.db_url, sql)


def test_gateway_pages_on_site_when_the_cloud_is_away_and_the_cloud_does_not_repage(
        services: Services, site_broker: Mosquitto, receiver: Receiver,
        gateway_factory: Any, tmp_path: Path) -> None:
    notify = tmp_path / "notify.toml"
    notify.write_text(f"""
[grouping]
window_s = 1
[[routes]]
channel = "webhook"
url = "{receiver.url}"
secret = "{SECRET}"
""")
    cloud = Cloud(services, tmp_path).register("gw-ehpad", "p-edge").register("gw-ctl", "p-ctl")
    cloud.extra_args += ["--notify", str(notify)]
    cloud.start()
    console, pages = _subscribe(site_broker.port, nurse_console_topic("site-1"))
    try:
        services.mosquitto.stop()  # the EHPAD's internet link is down

        replay = tmp_path / "low.jsonl"
        at = (now_utc() - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        replay.write_text(json.dumps({"device": "g1", "kind": "glucose", "value": 2.5,
                                      "unit": "mmol/L", "time": at}) + "\n")
        gw = gateway_factory("gw-ehpad", replay, patients={"g1": "p-edge"},
                             exit_when_done=False)
        with gw.config.open("a") as f:
            f.write(f'\n[alarms]\nhost = "127.0.0.1"\nport = {site_broker.port}\n'
                    'offline_after_s = 1\n')
        gw.start()

        page = pages.get(timeout=20)  # the nurses on site are paged without the cloud
        assert (page.qos, page.retain) == (1, False)
        body = json.loads(page.payload)
        [alarm] = body["alerts"]
        assert (body["patient"], alarm["rule"], alarm["severity"]) == ("p-edge", LOW, "urgent")
        assert body["id"] == alarm_id("p-edge", LOW, alarm["reading"])
        assert body["source"] == "gateway:gw-ehpad"
        assert (body["language"], alarm["text"]) == ("en", alarm["message"])  # the default

        services.mosquitto.start()  # the link returns
        alert = wait_for(lambda: [a for a in cloud.api.get("/alerts").json()
                                  if a["patient"] == "p-edge" and a["rule"] == LOW], 40,
                         "the cloud's own alert for the event")[0]
        marked = wait_for(lambda: _cloud_db(
            cloud, f"SELECT on_site_alarm FROM alert_timers WHERE alert_id = {alert['id']}"),
            20, "the alert marked as paged on site")
        assert marked == [(body["id"],)]
        assert _cloud_db(cloud, "SELECT id, gateway_id FROM edge_alarms") == [
            (body["id"], "gw-ehpad")]

        _publish_low(services.mosquitto.port, "p-ctl")  # an event nobody paged yet
        wait_for(lambda: [h for h in receiver.delivered() if h.json["patient"] == "p-ctl"],
                 30, "the cloud's page for the control patient")
        time.sleep(1.5)  # one more grouping window: nothing else may come
        assert [h.json["patient"] for h in receiver.delivered()] == ["p-ctl"], \
            "no second page for the event paged on site"
        assert pages.empty(), "the console got one page, from the gateway"
        assert "paged the site's nurse console" in gw.log()
    finally:
        console.disconnect()
        console.loop_stop()
        cloud.stop()
        cloud.close()
