"""Edge alarms without brokers: which readings raise an alarm, when it is left to the cloud,
and that it survives a restart until the cloud was told (gateway/edge.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerting.notify.config import MqttSettings
from gateway.config import load
from gateway.edge import EdgeAlarms, EdgeSettings
from gateway.errors import ConfigError
from tests.alerting.alerting_kit import reading
from vigie.contract import Kind, alarm_id, alarms_topic, decode_alarms, nurse_console_topic

NOW = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)


class Link:
    def __init__(self, offline_for: float | None) -> None:
        self.offline = offline_for

    def __call__(self) -> float | None:
        return self.offline


def _edge(tmp_path: Path, link: Link, language: str = "en") -> EdgeAlarms:
    settings = EdgeSettings(site="ehpad-1", local_broker=MqttSettings(port=9),
                            db=tmp_path / "alarms.sqlite3", offline_after_s=3600,
                            language=language)
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


class Console:
    """Stands for the site broker: records what would be paged."""

    def __init__(self) -> None:
        self.pages: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.pages.append((topic, json.loads(payload)))

    def close(self) -> None:
        pass


def _page(tmp_path: Path, language: str) -> dict[str, Any]:
    link = Link(10.0)
    edge = _edge(tmp_path, link, language)
    console = Console()
    edge._console = console  # type: ignore[assignment]
    edge.observe([reading(Kind.GLUCOSE, 45.0, NOW)])
    link.offline = 7200.0  # past offline_after_s: page on site
    edge.step()
    edge.close()
    [(topic, body)] = console.pages
    assert topic == nurse_console_topic("ehpad-1")
    return body


def test_a_french_site_is_paged_in_french(tmp_path: Path) -> None:
    body = _page(tmp_path, "fr")
    [alert] = body["alerts"]
    assert body["language"] == "fr"
    assert alert["text"] == "Hypoglycémie de niveau 2 : 45 mg/dL (< 54)"
    assert body["title"].startswith("[Vigie] URGENTE : patient ")
    assert body["title"].endswith("1 alerte - Hypoglycémie de niveau 2 : 45 mg/dL (< 54)")
    # the fields of version 1 keep their meaning: English message, codes
    assert (alert["message"], alert["message_key"], alert["severity"], alert["change"]) == (
        "level 2 hypoglycaemia 45 mg/dL (< 54)", "dm.hypoglycaemia.level2", "urgent", "opened")


def test_an_english_site_keeps_its_page(tmp_path: Path) -> None:
    body = _page(tmp_path, "en")
    [alert] = body["alerts"]
    assert body["language"] == "en" and body["severity"] == "urgent"
    assert body["source"] == "gateway:gw-1" and body["id"] == alert["alarm_id"]
    assert alert["message"] == alert["text"] == "level 2 hypoglycaemia 45 mg/dL (< 54)"
    assert body["title"].startswith("[Vigie] URGENT: patient ")


def test_an_alarm_stored_without_text_pages_in_english(tmp_path: Path) -> None:
    edge = _edge(tmp_path, Link(10.0), "fr")
    edge.observe([reading(Kind.GLUCOSE, 45.0, NOW)])
    [alarm] = edge.store.unpaged()
    edge.store.forget(alarm.id)
    edge.store.add(alarm)  # as stored by a gateway before alarms had texts
    [(_, text)] = edge.store.to_page()
    assert text is None
    body = json.loads(edge._console_payload(alarm, NOW, text))
    assert body["alerts"][0]["text"] == alarm.message and body["language"] == "fr"
    edge.close()


def _config(tmp_path: Path, alarms: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-1"\nsite = "ehpad-1"\n\n[alarms]\n' + alarms)
    return path


def test_alarms_language_defaults_to_english_and_takes_french(tmp_path: Path) -> None:
    default = load(_config(tmp_path, "port = 1883\n")).alarms
    french = load(_config(tmp_path, 'language = "fr"\n')).alarms
    assert default is not None and default.language == "en"
    assert french is not None and french.language == "fr"


def test_alarms_unknown_language_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[alarms\] language: unknown language 'de' "
                                          r"\(known: en, fr\)"):
        load(_config(tmp_path, 'language = "de"\n'))
