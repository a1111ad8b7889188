"""End-to-end acknowledgement on the gateway: a PUBACK marks readings sent, the cloud's
``stored`` message deletes them, and what stays unconfirmed is sent again on time.

The publisher runs here without a network: a fake stands in for the MQTT client (it numbers
each publish), PUBACKs are handed to the publisher as the client's deliveries would, and the
wall clock is a test clock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import OutboxError, OutboxFull
from gateway.outbox import Outbox, ResendPolicy
from gateway.publisher import SWEEP_SPACING_S, Publisher, PublisherSettings
from tests.gateway.test_outbox import draft
from vigie.contract import encode_stored, stored_topic
from vigie.mqtt import Delivery, MqttClient

T0 = 1_800_000_000.0
POLICY = ResendPolicy(timeout_s=600.0, max_s=3600.0, after_reconnect_s=5.0)


class FakePaho:
    """Records what is published; each publish gets the next message id."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                retain: bool = False) -> Delivery:
        self.published.append((topic, payload, len(self.published) + 1))
        delivery = Delivery(None, topic)
        delivery.mid = len(self.published)
        return delivery


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, path: Path, readings: int = 5) -> None:
        self.box = Outbox(path)
        self.box.put([draft(i) for i in range(readings)])
        self.paho = FakePaho()
        self.filters: list[str] = []
        self.clock = Clock()
        self.pub = self.publisher()

    def publisher(self) -> Publisher:
        pub = Publisher("gw", self.box, PublisherSettings(batch_size=2, resend=POLICY))
        self.filters = pub.client.filters()
        pub.client = cast(MqttClient, self.paho)
        pub.clock = self.clock
        self.connect(pub)
        return pub

    @staticmethod
    def connect(pub: Publisher) -> None:
        """The client's on_connect for a CONNACK "Success"."""
        pub._on_connect(True)

    def reconnect(self) -> None:
        self.pub._connected = False
        self.connect(self.pub)

    def round_trip(self) -> list[str]:
        """Publish what is due, the broker acknowledges it all; the reading ids sent."""
        start = len(self.paho.published)
        self.pub._pump()
        batches = [(p, mid) for t, p, mid in self.paho.published[start:]
                   if t.endswith("/observations")]
        self.pub._acks += [(mid, None) for _, mid in batches]
        self.pub._handle_acks()
        return [str(r["id"]) for p, _ in batches for r in json.loads(p)["readings"]]

    def after(self, seconds: float) -> list[str]:
        self.clock.now += seconds
        return self.round_trip()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "o.sqlite3")


def ids(*numbers: int) -> list[str]:
    return [draft(n).id for n in numbers]


def test_the_gateway_subscribes_to_its_own_stored_topic(rig: Rig) -> None:
    assert rig.filters == [stored_topic("gw")]


def test_a_puback_keeps_readings_until_the_cloud_confirms_them(rig: Rig) -> None:
    assert rig.round_trip() == ids(0, 1, 2, 3, 4)
    assert rig.box.depth == 5 and rig.box.unconfirmed() == 5, "sent, kept, counted"
    assert rig.pub.stats.acked_readings == 5 and not rig.pub.drained()
    assert rig.after(60) == [], "nothing new, nothing due"
    rig.pub._on_stored(encode_stored("gw", [*ids(0, 1), "f" * 32]))  # f...f: not here
    assert rig.box.depth == 3 and rig.pub.stats.confirmed_readings == 2
    assert [p.body["id"] for p in rig.box.due(POLICY, T0 + 1e6, T0, 10)] == ids(2, 3, 4)
    rig.pub._on_stored(encode_stored("gw", ids(2, 3, 4)))
    assert rig.box.depth == 0 and rig.box.unconfirmed() == 0 and rig.pub.drained()


@pytest.mark.parametrize("payload", [
    b"", b"not json", b"[" * 10_000, b"\xff\xfe", b" " * (1 << 20),
    b'{"v": 1, "gateway": "gw", "ids": "0"}', b'{"v": true, "gateway": "gw", "ids": []}',
    b'{"v": 1, "gateway": "gw", "ids": [["00000000000000000000000000000000"]]}',
    b'{"v": 1, "gateway": "gw", "ids": ["00000000000000000000000000000000", 1]}',
    encode_stored("gw-other", ids(0, 1)),  # another gateway's confirmation: not ours
])
def test_a_malformed_stored_message_is_ignored(rig: Rig, payload: bytes) -> None:
    rig.round_trip()
    rig.pub._on_stored(payload)  # no exception, nothing deleted
    assert rig.box.depth == 5 and rig.pub.stats.confirmed_readings == 0


def test_unconfirmed_readings_go_again_after_a_timeout_that_doubles(rig: Rig) -> None:
    first = rig.round_trip()
    assert rig.after(599) == []
    assert rig.after(1) == first and rig.pub.stats.resent_readings == 5
    assert rig.after(1199) == [], "the second copy waits twice as long"
    assert rig.after(1) == first
    assert rig.after(2400) == first  # 600 * 4
    assert rig.after(3599) == [], "at most max_s between copies"
    assert rig.after(1) == first
    assert rig.pub.stats.resent_readings == 20 and rig.box.depth == 5


def test_after_a_reconnect_what_was_sent_before_goes_again_in_seconds(rig: Rig) -> None:
    first = rig.round_trip()
    rig.clock.now += 2
    rig.reconnect()  # a broker that restarted may have lost them
    rig.box.put([draft(9)])
    assert rig.round_trip() == ids(9), "the new one; the others were sent 2 s ago"
    assert rig.after(3) == first, "5 s after they were sent; draft 9 went on this connection"
    rig.clock.now += 1
    rig.reconnect()
    assert rig.round_trip() == []
    assert rig.after(1) == ids(9), "sent over the previous connection 5 s ago"
    assert rig.after(7) == [] and rig.after(1) == first, "the second copy waits 10 s"


def test_unconfirmed_readings_go_again_after_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.sqlite3")
    first = rig.round_trip()
    rig.box.close()
    rig.box = Outbox(tmp_path / "o.sqlite3")
    assert rig.box.depth == 5 and rig.box.unconfirmed() == 5
    rig.clock.now += 1
    rig.pub = rig.publisher()
    assert rig.round_trip() == [], "marked sent: not new, and sent a second ago"
    assert rig.after(SWEEP_SPACING_S) == first


def test_a_mark_that_fails_keeps_the_readings_for_later(rig: Rig,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(rows: object, at: float | None = None) -> int:
        raise OutboxError("outbox: marking readings sent failed: database or disk is full")

    monkeypatch.setattr(rig.box, "mark_sent", disk_full)
    assert rig.round_trip() == ids(0, 1, 2, 3, 4)  # no exception out of the publisher
    assert sorted(rig.pub._retry) == [p.row for p in rig.box.pending(5)], "sent again later"
    assert rig.pub._retry_after - time.monotonic() > POLICY.timeout_s - 5, "not at once"
    rig.pub._on_stored(encode_stored("gw", ids(0, 1, 2, 3, 4)))
    assert rig.box.depth == 0 and rig.box.get(rig.pub._retry) == []


def test_sent_readings_count_against_the_capacity(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", capacity=3, seen_days=1)
    box.put([draft(1), draft(2), draft(3)])
    box.mark_sent([p.row for p in box.pending(3)], T0)
    assert box.pending(10) == [] and box.depth == 3
    with pytest.raises(OutboxFull):
        box.put([draft(4)])
    assert box.prune_seen(now=T0 + 10 * 86400) == 0, "ids of unconfirmed readings are kept"
    assert box.confirm(ids(1)) == 1 and box.depth == 2
    box.put([draft(4)])
    assert [p.body["id"] for p in box.pending(10)] == ids(4)


def test_a_mark_for_a_reading_already_confirmed_is_dropped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([draft(1), draft(2)])
    rows = [p.row for p in box.pending(2)]
    assert box.confirm(ids(1)) == 1  # the cloud's word came before the broker's PUBACK
    assert box.mark_sent(rows, T0) == 1 and box.unconfirmed() == 1


@settings(max_examples=200, deadline=None)
@given(sends=st.lists(st.integers(1, 60), min_size=1, max_size=8),
       ages=st.lists(st.floats(0, 1e6), min_size=8, max_size=8),
       connected_ago=st.floats(0, 1e6))
def test_the_outbox_applies_the_policy_as_written(tmp_path_factory: pytest.TempPathFactory,
                                                  sends: list[int], ages: list[float],
                                                  connected_ago: float) -> None:
    """``due`` and ``next_due`` (SQL) agree with ``ResendPolicy.wait`` (Python)."""
    box = Outbox(tmp_path_factory.mktemp("o") / "o.sqlite3")
    box.put([draft(i) for i in range(len(sends))])
    now, connected = T0 + 2e6, T0 + 2e6 - connected_ago
    expected: dict[str, float] = {}
    for i, (n, age) in enumerate(zip(sends, ages, strict=False)):
        row = box.pending(1)[0].row
        for _ in range(n):
            box.mark_sent([row], now - age)
        expected[draft(i).id] = now - age + POLICY.wait(n, now - age < connected)
    due = {p.body["id"] for p in box.due(POLICY, now, connected, 100)}
    assert due == {i for i, at in expected.items() if at <= now}
    first = box.next_due(POLICY, now, connected)
    assert first is not None and first == pytest.approx(min(expected.values()))
    box.close()
