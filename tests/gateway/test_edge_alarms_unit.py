"""Edge alarms without brokers: which readings raise an alarm, when it is left to the cloud,
and that it survives a restart until the cloud was told (gateway/edge.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alerting.notify.config import MqttSettings
from gateway.edge import EdgeAlarms, EdgeSettings
from tests.alerting.alerting_kit import reading
from vigie.contract import Kind, alarm_id, alarms_topic, decode_alarms

NOW = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)


class Link:
    def __init__(self, offline_for: float | None) -> None:
        self.offline = offline_for

    def __call__(self) -> float | None:
        return self.offline


def _edge(tmp_path: Path, link: Link) -> EdgeAlarms:
    settings = EdgeSettings(site="ehpad-1", local_broker=MqttSettings(port=9),
                            db=tmp_path / "alarms.sqlite3", offline_after_s=3600)
    return EdgeAlarms("gw-1", settings, link, clock=lambda: NOW)


def test_link_up_leaves_the_page_to_the_cloud(tmp_path: Path) -> None:
    edge = _edge(tmp_path, Link(None))
    edge.observe([reading(Kind.GLUCOSE, 45.0, NOW)])
    assert edge.stats["raised"] == 1 and edge.store.unpaged() == []
    edge.close()


def test_only_urgent_findings_raise_alarms(tmp_path: Path) -> None:
    edge = _edge(tmp_path, Link(10.0))
    edge.observe([reading(Kind.GLUCOSE, 65.0, NOW), reading(Kind.WEIGHT, 80.0, NOW)])
    assert edge.store.unpaged() == []
    edge.close()


def test_alarm_waits_while_offline_and_is_dropped_when_the_link_returns(tmp_path: Path
                                                                       ) -> None:
    link = Link(10.0)
    edge = _edge(tmp_path, link)
    low = reading(Kind.GLUCOSE, 45.0, NOW)
    edge.observe([low])
    [alarm] = edge.store.unpaged()
    assert alarm.id == alarm_id(low.patient_id or "", "dm.hypoglycaemia", low.id)
    edge.step()  # offline 10 s < 3600 s: not paged yet
    assert len(edge.store.unpaged()) == 1
    edge.close()
    link.offline = None
    again = _edge(tmp_path, link)  # a restart keeps it
    assert [a.id for a in again.store.unpaged()] == [alarm.id]
    again.step()
    assert again.store.unpaged() == [] and again.stats["left_to_cloud"] == 1
    again.close()


def test_paged_alarms_are_fed_to_the_cloud_until_acknowledged(tmp_path: Path) -> None:
    edge = _edge(tmp_path, Link(10.0))
    edge.observe([reading(Kind.GLUCOSE, 45.0, NOW)])
    [alarm] = edge.store.unpaged()
    assert edge.pending() == []
    edge.store.mark_paged(alarm.id, NOW)
    [(key, topic, payload)] = edge.pending()
    assert (key, topic) == (alarm.id, alarms_topic("gw-1"))
    [told] = decode_alarms(payload, "gw-1")
    assert (told.id, told.paged_at) == (alarm.id, NOW)
    edge.sent(key)
    assert edge.pending() == [] and edge.store.paged() == []
    edge.close()
