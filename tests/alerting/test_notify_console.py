"""Nurse console channel against a real Mosquitto: QoS 1, not retained, on the site's topic;
confirmed by PUBACK; a broker down for a while loses nothing."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.alerting.notify_kit import HYPO2, HYPO2_EN, HYPO2_FR, Clock, Cloud, dispatcher, routing
from vigie.contract import nurse_console_topic
from vigie.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Console:
    """The EHPAD's nurse console: a subscriber of the site's topic."""

    def __init__(self, port: int, site: str) -> None:
        self.got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"console-{site}",
                                  protocol=mqtt.MQTTv5)
        subscribed = queue.Queue[bool]()
        self.client.on_message = lambda c, u, m: self.got.put(m)
        self.client.on_subscribe = lambda *a: subscribed.put(True)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(nurse_console_topic(site), 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def next(self, timeout: float = 10) -> mqtt.MQTTMessage:
        return self.got.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path / "site-broker")
    m.start()
    yield m
    m.stop()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    c = Cloud(tmp_path, Clock())
    for pid in ("p-1", "p-2"):
        c.patient(pid, "ehpad-1")
    yield c
    c.close()


def _config(tmp_path: Path, port: int, language: str = "en") -> Any:
    return routing(tmp_path, [{"site": "ehpad-1", "channel": "nurse_console",
                               "language": language}],
                   mqtt={"host": "127.0.0.1", "port": port},
                   retry={"min_s": 1, "max_s": 10, "timeout_s": 1})


def test_console_gets_the_page_at_qos1_not_retained(broker: Mosquitto, cloud: Cloud,
                                                    tmp_path: Path) -> None:
    console = Console(broker.port, "ehpad-1")
    d = dispatcher(cloud, _config(tmp_path, broker.port))
    try:
        aid = cloud.raise_("p-1", "dm.hypoglycaemia")
        cloud.clock.advance(30)
        assert d.step() == 1, "confirmed by PUBACK"
        msg = console.next()
        assert (msg.topic, msg.qos, msg.retain) == ("vigie/v1/sites/ehpad-1/nurse-console", 1,
                                                    False)
        body = json.loads(msg.payload)
        assert body["patient"] == "p-1" and body["alerts"][0]["alert_id"] == aid
        assert cloud.depth() == (0, 0)
    finally:
        d.close()
        console.close()


def test_broker_down_then_up_loses_nothing(broker: Mosquitto, cloud: Cloud,
                                           tmp_path: Path) -> None:
    d = dispatcher(cloud, _config(tmp_path, broker.port))
    console = None
    try:
        broker.stop()
        cloud.raise_("p-2", "hf.heart_rate")
        cloud.clock.advance(30)
        assert d.step() == 0
        assert cloud.depth() == (0, 1)
        broker.start()
        console = Console(broker.port, "ehpad-1")
        deadline, sent = time.monotonic() + 30, 0
        while not sent and time.monotonic() < deadline:
            cloud.clock.advance(10)
            sent = d.step()
        assert sent == 1
        assert json.loads(console.next().payload)["patient"] == "p-2"
        assert cloud.depth() == (0, 0)
    finally:
        d.close()
        if console is not None:
            console.close()


def test_french_console_gets_the_page_in_french(broker: Mosquitto, cloud: Cloud,
                                                tmp_path: Path) -> None:
    console = Console(broker.port, "ehpad-1")
    d = dispatcher(cloud, _config(tmp_path, broker.port, language="fr"))
    try:
        cloud.raise_("p-1", "dm.hypoglycaemia", text=HYPO2)
        cloud.clock.advance(30)
        assert d.step() == 1
        body = json.loads(console.next().payload)
        assert body["language"] == "fr"
        assert body["title"] == f"[Vigie] URGENTE : patient p-1, 1 alerte - {HYPO2_FR}"
        [alert] = body["alerts"]
        assert (alert["text"], alert["message"]) == (HYPO2_FR, HYPO2_EN)
    finally:
        d.close()
        console.close()
