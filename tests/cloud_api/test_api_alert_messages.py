"""Alert texts through the store and the API: English ``message`` as before, ``messages`` per
language rendered from the key and arguments stored with the alert."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from alerting.engine import Engine
from alerting.seam import AlertSignal
from alerting.settings import PatientSettings, RulesConfig
from cloud_api.alerts import LiveIndex, alert_messages, apply_signals, tick_lifecycle
from cloud_api.db import Alert
from tests.cloud_api.api_kit import T0, Api
from vigie.contract import CANONICAL_UNIT, Kind, Reading

RULE = "dm.hypoglycaemia"


def _glucose(api: Api, value: float, at_min: int) -> list[AlertSignal]:
    """Evaluate a glucose of site A's patient and store the signals it raises."""
    engine = Engine(RulesConfig(default=PatientSettings.model_validate(
        {"profile": "diabetes"})))
    at = T0 + timedelta(minutes=at_min)
    signals = engine.evaluate(Reading(
        id=f"g-{at_min}", gateway_id=api.alpha.gateway, device_id="meter-1",
        patient_id=api.alpha.patient, stream_seq=at_min, kind=Kind.GLUCOSE, value=value,
        unit=CANONICAL_UNIT[Kind.GLUCOSE], measured_at=at, received_at=at, device_time=None,
        clock_offset_s=0.0, time_zone=None, time_trusted=True))
    with api.ctx.sessions.begin() as session:
        apply_signals(session, signals, LiveIndex(session), now=at)
    return signals


def _hypo(items: list[dict[str, object]]) -> dict[str, object]:
    (item,) = [a for a in items if a["rule"] == RULE]
    return item


def test_alert_raised_through_the_api_reads_in_french(api: Api) -> None:
    _glucose(api, 48, 1)
    headers = api.token("nurse-alpha")
    inbox = _hypo(api.client.get("/alerts/inbox", headers=headers).json())
    assert inbox["message"] == "level 2 hypoglycaemia 48 mg/dL (< 54)", "English as before"
    messages = inbox["messages"]
    assert isinstance(messages, dict)
    assert messages["en"] == inbox["message"]
    assert "hypoglycémie" in messages["fr"].lower() and "48" in messages["fr"]
    assert messages["fr"] == "Hypoglycémie de niveau 2 : 48 mg/dL (< 54)"
    assert inbox["message_key"] == "dm.hypoglycaemia.level2"
    listed = _hypo(api.client.get("/alerts", headers=headers,
                                  params={"patient": api.alpha.patient}).json())
    assert listed["messages"] == messages
    acked = api.client.post(f"/alerts/{inbox['id']}/acknowledge", headers=headers,
                            json={"comment": "resucrage"}).json()
    assert acked["messages"]["fr"] == messages["fr"]


def test_a_newer_reading_updates_the_text_in_every_language(api: Api) -> None:
    _glucose(api, 62, 1)
    _glucose(api, 45, 6)
    item = _hypo(api.client.get("/alerts/inbox", headers=api.token("nurse-alpha")).json())
    assert item["message"] == "level 2 hypoglycaemia 45 mg/dL (< 54)"
    assert item["messages"] == {"en": item["message"],
                                "fr": "Hypoglycémie de niveau 2 : 45 mg/dL (< 54)"}


def test_alert_stored_without_a_key_keeps_its_english_message(api: Api) -> None:
    item = next(a for a in api.client.get("/alerts/inbox", headers=api.token("nurse-alpha"))
                .json() if a["id"] == api.alpha.alert_id)
    assert item["messages"] == {"en": "alpha-message"} and item["message_key"] is None


def test_unrenderable_stored_text_falls_back_to_english(api: Api) -> None:
    with api.ctx.sessions.begin() as session:
        alert = session.get(Alert, api.alpha.alert_id)
        assert alert is not None
        alert.details = {"text": {"key": "some.future.key", "args": {"x": 1}}}
    with api.ctx.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.id == api.alpha.alert_id)).one()
        assert alert_messages(alert) == {"en": "alpha-message"}
    item = next(a for a in api.client.get("/alerts/inbox", headers=api.token("nurse-alpha"))
                .json() if a["id"] == api.alpha.alert_id)
    assert item["messages"] == {"en": "alpha-message"}
    assert item["message_key"] == "some.future.key"


def test_the_systems_history_lines_read_in_french(api: Api) -> None:
    """What the system writes in an alert's history (raised, worse, escalated) comes
    in every language; a clinician's comment is shown as written, in ``comment`` only."""
    _glucose(api, 65, 1)  # level 1
    headers = api.token("nurse-alpha")
    aid = _hypo(api.client.get("/alerts/inbox", headers=headers).json())["id"]
    ack = api.client.post(f"/alerts/{aid}/acknowledge", headers=headers,
                          json={"comment": "resucrage, 15 g"})
    assert ack.status_code == 200, ack.text
    _glucose(api, 48, 2)  # worse: the acknowledged alert reopens
    with api.ctx.sessions.begin() as session:
        assert tick_lifecycle(session, T0 + timedelta(minutes=20))  # 15 min unacknowledged
    history = api.client.get(f"/alerts/{aid}/history", headers=headers).json()
    lines = [(h["who"], h["to_state"], h["comment"], h["messages"]) for h in history]
    hypo1 = "level 1 hypoglycaemia 65 mg/dL (< 70)"
    assert lines[:2] == [
        ("system", "open", hypo1,
         {"en": hypo1, "fr": "Hypoglycémie de niveau 1 : 65 mg/dL (< 70)"}),
        ("nurse-alpha", "acknowledged", "resucrage, 15 g", None)]
    assert lines[2][1:] == ("open", "worse: level 2 hypoglycaemia 48 mg/dL (< 54)", {
        "en": "worse: level 2 hypoglycaemia 48 mg/dL (< 54)",
        "fr": "aggravation : Hypoglycémie de niveau 2 : 48 mg/dL (< 54)"})
    assert lines[3][1:] == ("escalated", "not acknowledged within 15 min: level 1", {
        "en": "not acknowledged within 15 min: level 1",
        "fr": "non acquittée en 15 min : niveau 1"})
    assert len(lines) == 4
