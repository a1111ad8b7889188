"""Webhook channel against a real HTTP receiver on loopback: signatures verified the way the
module docstring tells receivers to, retried when the receiver is down, delivered once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.notify import sign, verify
from alerting.notify.signing import DELIVERY_HEADER
from tests.alerting.notify_kit import (
    HYPO2,
    HYPO2_EN,
    HYPO2_FR,
    SECRET,
    Clock,
    Cloud,
    Receiver,
    dispatcher,
    routing,
    serve,
)
from vigie.services import free_port

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    c = Cloud(tmp_path, Clock())
    c.patient("p-1", "ehpad-1")
    yield c
    c.close()


def _webhook(url: str, **extra: object) -> dict[str, object]:
    return {"site": "ehpad-1", "channel": "webhook", "url": url, "secret": SECRET, **extra}


def test_signature_scheme() -> None:
    body = b'{"a":1}'
    sig = sign(b"k", 1_767_225_600, body)
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert verify(b"k", "1767225600", body, sig, now=1_767_225_600 + 299)
    assert not verify(b"k", "1767225600", body + b" ", sig, now=1_767_225_600)
    assert not verify(b"other", "1767225600", body, sig, now=1_767_225_600)
    assert not verify(b"k", "1767225600", body, sig, now=1_767_225_600 + 301), "replay window"
    assert not verify(b"k", "1767225601", body, sig, now=1_767_225_600), "timestamp is signed"
    assert not verify(b"k", "abc", body, sig, now=1_767_225_600)


def test_signed_message_verified_by_a_real_receiver(cloud: Cloud, tmp_path: Path) -> None:
    for receiver in serve(Receiver(free_port())):
        d = dispatcher(cloud, routing(tmp_path, [_webhook(receiver.url)]))
        aid = cloud.raise_("p-1", "dm.hypoglycaemia")
        assert d.step() == 0, "the grouping window has not passed"
        cloud.clock.advance(30)
        assert d.step() == 1
        [hit] = receiver.hits
        assert hit.valid, "the receiver verified the HMAC signature"
        body = hit.json
        assert (body["patient"], body["site"], body["severity"]) == ("p-1", "ehpad-1", "urgent")
        assert [(a["alert_id"], a["change"], a["rule"]) for a in body["alerts"]] == [
            (aid, "opened", "dm.hypoglycaemia")]
        assert hit.headers[DELIVERY_HEADER] == body["id"]
        assert cloud.depth() == (0, 0)
        d.close()


def test_french_route_carries_text_in_french_beside_the_english_fields(
        cloud: Cloud, tmp_path: Path) -> None:
    for receiver in serve(Receiver(free_port())):
        d = dispatcher(cloud, routing(tmp_path, [
            _webhook(receiver.url, name="fr", language="fr"), _webhook(receiver.url, name="en")]))
        aid = cloud.raise_("p-1", "dm.hypoglycaemia", text=HYPO2)
        old = cloud.raise_("p-1", "hf.heart_rate")  # stored without a key
        cloud.clock.advance(30)
        assert d.step() == 2
        assert [h.valid for h in receiver.hits] == [True, True], "HMAC verified"
        bodies = {h.json["language"]: h.json for h in receiver.delivered()}
        fr, en = bodies["fr"], bodies["en"]
        assert fr["title"] == f"[Vigie] URGENTE : patient p-1, 2 alertes - {HYPO2_FR}"
        assert [(a["alert_id"], a["message"], a["message_key"], a["text"])
                for a in fr["alerts"]] == [
            (aid, HYPO2_EN, "dm.hypoglycaemia.level2", HYPO2_FR),
            (old, "hf.heart_rate is urgent", None, "hf.heart_rate is urgent")]
        assert en["title"] == f"[Vigie] URGENT: patient p-1, 2 alerts - {HYPO2_EN}"
        assert [a["text"] for a in en["alerts"]] == [HYPO2_EN, "hf.heart_rate is urgent"]
        unchanged = {"v", "id", "site", "patient", "created_at", "severity", "alerts"}
        for body in (fr, en):
            assert set(body) == unchanged | {"language", "title"}
            assert (body["v"], body["patient"], body["severity"]) == (1, "p-1", "urgent")
            assert [a["rule"] for a in body["alerts"]] == ["dm.hypoglycaemia", "hf.heart_rate"]
            assert set(body["alerts"][0]) == {
                "alert_id", "change", "rule", "severity", "category", "message", "value",
                "time", "level", "late", "at", "reading", "message_key", "text"}
        d.close()


def test_wrong_secret_is_refused_and_kept(cloud: Cloud, tmp_path: Path) -> None:
    for receiver in serve(Receiver(free_port(), secret="the receiver's real secret")):
        d = dispatcher(cloud, routing(tmp_path, [_webhook(receiver.url)]))
        cloud.raise_("p-1", "dm.hypoglycaemia")
        cloud.clock.advance(30)
        assert d.step() == 0
        assert [h.valid for h in receiver.hits] == [False]
        assert cloud.depth() == (0, 1), "a 401 is retried (slowly), never dropped"
        d.close()


def test_receiver_down_then_up_is_retried_and_delivered_once(cloud: Cloud,
                                                              tmp_path: Path) -> None:
    receiver = Receiver(free_port())  # nothing listens yet: connection refused
    d = dispatcher(cloud, routing(tmp_path, [_webhook(receiver.url)]))
    cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.clock.advance(30)
    waits = []
    for _ in range(5):  # down for a while: backoff grows, capped, nothing lost
        assert d.step() == 0
        assert cloud.depth() == (0, 1)
        assert d.step() == 0, "not retried before its backoff"
        waits.append(_next_retry_in(cloud))
        cloud.clock.advance(waits[-1])
    assert all(0.5 <= w <= 60 for w in waits) and max(waits) > min(waits)
    for _ in serve(receiver):
        assert d.step() == 1
        assert d.step() == 0
        cloud.clock.advance(3600)
        assert d.step() == 0
        assert len(receiver.hits) == 1 and receiver.hits[0].valid
    assert cloud.depth() == (0, 0)
    d.close()


def test_server_errors_are_retried(cloud: Cloud, tmp_path: Path) -> None:
    for receiver in serve(Receiver(free_port(), answers=[503, 500])):
        d = dispatcher(cloud, routing(tmp_path, [_webhook(receiver.url)]))
        cloud.raise_("p-1", "dm.hypoglycaemia")
        cloud.clock.advance(30)
        sent = 0
        for _ in range(3):
            sent += d.step()
            cloud.clock.advance(60)
        assert sent == 1 and [h.valid for h in receiver.hits] == [True] * 3
        assert len({h.headers[DELIVERY_HEADER] for h in receiver.hits}) == 1, \
            "every retry carries the same delivery key"
        d.close()


def _next_retry_in(cloud: Cloud) -> float:
    from sqlalchemy import select

    from cloud_api.db import NotifyDelivery

    with cloud.sessions() as session:
        [row] = session.scalars(select(NotifyDelivery)).all()
        return (row.next_at - cloud.clock.now).total_seconds()
