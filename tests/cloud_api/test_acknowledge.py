"""The acknowledge stage: which readings are named to which gateway, and that publishing the
confirmations never stops ingest."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from cloud_api.stages.acknowledge import Confirmations, Publishes, stored_messages
from cloud_api.stages.refusal import refusal
from vigie.contract import MAX_STORED_IDS, Kind, Reading, decode_stored, stored_topic
from vigie.mqtt import Delivery, MqttError, NotConnected, PublishFailed, PublishRefused

T = datetime(2026, 11, 1, 10, tzinfo=UTC)


def reading(n: int, gateway: str = "gw-a") -> Reading:
    return Reading(id=f"{n:032x}", gateway_id=gateway, device_id="d1", patient_id="p1",
                   stream_seq=n, kind=Kind.GLUCOSE, value=100.0, unit="mg/dL", measured_at=T,
                   received_at=T, device_time=None, clock_offset_s=0.0, time_zone=None,
                   time_trusted=True)


def named(messages: list[tuple[str, bytes]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for topic, payload in messages:
        gateway = topic.split("/")[3]
        assert topic == stored_topic(gateway)
        out.setdefault(gateway, []).extend(decode_stored(payload, gateway))
    return out


def test_stored_and_quarantined_readings_are_named_to_their_gateway() -> None:
    stored = [(reading(1), "site-1"), (reading(2), None), (reading(3, "gw-b"), "site-2"),
              (reading(1), "site-1")]  # a copy in the same batch: named once
    quarantine = [
        refusal("t", "gw-a", "implausible", "glucose 5000", {}, f"{4:032x}"),
        refusal("t", "gw-b", "store", "refused", {}, f"{1:032x}"),  # same id, other gateway
        refusal("t", "gw-a", "schema", "bad id", {}, "not-a-reading-id"),  # the gateway's own
        refusal("t", "gw-a", "too-deep", "whole message", b"[[[[", None),  # no reading id
        refusal("t", None, "topic", "no gateway", b"", f"{5:032x}"),  # nobody to tell
        refusal("t", "bad/gw", "schema", "not an id", b"", f"{6:032x}"),
        # kept by the gateway, sent again and stored once a care team registers it
        refusal("t", "gw-a", "unregistered-gateway", "no site", {}, f"{7:032x}"),
    ]
    assert named(stored_messages(stored, quarantine)) == {
        "gw-a": [f"{1:032x}", f"{2:032x}", f"{4:032x}"],
        "gw-b": [f"{3:032x}", f"{1:032x}"]}


def test_nothing_durable_names_nothing() -> None:
    assert stored_messages([], []) == []
    assert stored_messages([], [refusal("t", "gw-a", "too-large", "x", b"", None)]) == []


def test_long_lists_are_split_within_the_contract_bound() -> None:
    many = [(replace(reading(0), id=f"{i:032x}"), None) for i in range(2 * MAX_STORED_IDS + 1)]
    messages = stored_messages(many, [])
    assert [len(decode_stored(p, "gw-a")) for _, p in messages] == \
        [MAX_STORED_IDS, MAX_STORED_IDS, 1]


class FakeClient:
    """Stands in for ``vigie.mqtt.MqttClient``: each publish gets a ``Delivery`` the test
    resolves as the client's ``on_publish`` would, or raises what the client would."""

    def __init__(self, fail: MqttError | None = None) -> None:
        self.fail = fail
        self.sent: list[Delivery] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                retain: bool = False) -> Delivery:
        if self.fail is not None:
            raise self.fail
        assert qos == 1 and not retain
        delivery = Delivery(None, topic)
        delivery.mid = len(self.sent) + 1
        self.sent.append(delivery)
        return delivery


MESSAGES = stored_messages([(reading(1), None), (reading(2, "gw-b"), None)], [])


@pytest.mark.parametrize("paho", [FakeClient(PublishFailed("Payload too large.")),
                                  FakeClient(MqttError("boom")),
                                  FakeClient(PublishFailed("queue full"))])
def test_a_publish_that_fails_is_logged_never_raised(paho: FakeClient,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    confirmations = Confirmations(cast(Publishes, paho))
    with caplog.at_level(logging.ERROR):
        confirmations.send(MESSAGES)
    assert confirmations.failed == 2 and confirmations.published == 0
    assert "gateways/gw-b/stored not published" in caplog.text


def test_not_connected_is_not_a_failure() -> None:
    paho = FakeClient(NotConnected("offline"))  # paho sends it once connected
    confirmations = Confirmations(cast(Publishes, paho))
    confirmations.send(MESSAGES)
    # the next batch's send looks at the earlier messages (a broker restart once made the
    # cloud quarantine good batches as poison here)
    confirmations.send(MESSAGES)
    assert confirmations.published == 4 and confirmations.failed == 0


def test_a_connection_lost_before_the_puback_is_not_a_failure() -> None:
    paho = FakeClient()
    confirmations = Confirmations(cast(Publishes, paho))
    confirmations.send(MESSAGES)
    for delivery in paho.sent:
        delivery._resolve(NotConnected("lost"))  # what the client does on a disconnect
    confirmations.send([])
    assert confirmations.published == 2 and confirmations.failed == 0


def test_a_refusal_by_the_broker_is_claimed_and_logged(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    paho = FakeClient()
    confirmations = Confirmations(cast(Publishes, paho))
    confirmations.send(MESSAGES)
    not_authorized = ReasonCode(PacketTypes.PUBACK, identifier=0x87)
    paho.sent[0]._resolve(None)  # PUBACK "Success"
    paho.sent[1]._resolve(PublishRefused(paho.sent[1].topic, not_authorized))
    with caplog.at_level(logging.ERROR):
        confirmations.send([])
    assert confirmations.failed == 1
    assert "gateways/gw-b/stored not published: refused by the broker" in caplog.text
    assert "gw-a" not in caplog.text
