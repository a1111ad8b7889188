"""The acknowledge stage: which readings are named to which gateway, and that publishing the
confirmations never stops ingest."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTErrorCode

from cloud_api.stages.acknowledge import Confirmations, Publishes, stored_messages
from cloud_api.stages.refusal import refusal
from vigie.contract import MAX_STORED_IDS, Kind, Reading, decode_stored, stored_topic

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


class FakePaho:
    def __init__(self, fail: Exception | None = None,
                 rc: MQTTErrorCode = MQTTErrorCode.MQTT_ERR_SUCCESS) -> None:
        self.fail, self.rc = fail, rc
        self.sent: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                retain: bool = False) -> mqtt.MQTTMessageInfo:
        """paho's own MQTTMessageInfo, with the rc paho would give it: its is_published()
        raises for a failed or not-yet-connected publish, as the real client's does."""
        if self.fail is not None:
            raise self.fail
        assert qos == 1 and not retain
        info = mqtt.MQTTMessageInfo(len(self.sent) + 1)
        info.rc = self.rc
        self.sent.append(info)
        return info


MESSAGES = stored_messages([(reading(1), None), (reading(2, "gw-b"), None)], [])


@pytest.mark.parametrize("paho", [FakePaho(ValueError("Payload too large.")),
                                  FakePaho(RuntimeError("boom")),
                                  FakePaho(rc=MQTTErrorCode.MQTT_ERR_QUEUE_SIZE)])
def test_a_publish_that_fails_is_logged_never_raised(paho: FakePaho,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    confirmations = Confirmations(cast(Publishes, paho), set())
    with caplog.at_level(logging.ERROR):
        confirmations.send(MESSAGES)
    assert confirmations.failed == 2 and confirmations.published == 0
    assert "gateways/gw-b/stored not published" in caplog.text


def test_not_connected_is_not_a_failure() -> None:
    paho = FakePaho(rc=MQTTErrorCode.MQTT_ERR_NO_CONN)  # paho sends it once connected
    confirmations = Confirmations(cast(Publishes, paho), set())
    confirmations.send(MESSAGES)
    # the next batch's send looks at the earlier messages: paho's is_published() raises
    # for these (a broker restart made the cloud quarantine good batches as poison)
    confirmations.send(MESSAGES)
    assert confirmations.published == 4 and confirmations.failed == 0


def test_a_refusal_by_the_broker_is_claimed_and_logged(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    paho, refused = FakePaho(), {99}  # 99: another publisher's refused message
    confirmations = Confirmations(cast(Publishes, paho), refused)
    confirmations.send(MESSAGES)
    for info in paho.sent:
        info._set_as_published()  # what paho does on any PUBACK
    refused.add(paho.sent[1].mid)  # the client's on_publish saw a failure reason code
    with caplog.at_level(logging.ERROR):
        confirmations.send([])
    assert refused == {99}, "only its own ids are taken out"
    assert confirmations.failed == 1
    assert "gateways/gw-b/stored not published: refused by the broker" in caplog.text
    assert "gw-a" not in caplog.text
