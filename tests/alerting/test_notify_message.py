"""A notification's forms: stored in the outbox (key and arguments kept, rows stored before
the catalogue still read), and rendered per language for the wire, e-mail and console."""

from __future__ import annotations

import json
from typing import Any

from alerting.notify import AlertNotice, Message
from tests.alerting.notify_kit import HYPO2, HYPO2_EN, HYPO2_FR


def _notice(**changes: Any) -> AlertNotice:
    base: dict[str, Any] = dict(
        alert_id=7, change="opened", rule="dm.hypoglycaemia", severity="urgent",
        category="clinical", message=HYPO2_EN, value=48.0, time="2026-03-01T07:00:00Z",
        level=0, late=False, at="2026-03-01T07:00:05Z", reading="r-1", text=HYPO2)
    return AlertNotice(**{**base, **changes})


def _message(*alerts: AlertNotice, site: str | None = "ehpad-1") -> Message:
    return Message("k-1", site, "p-1", "2026-03-01T07:00:30Z", alerts)


def test_stored_form_keeps_key_and_arguments() -> None:
    message = _message(_notice(), _notice(alert_id=8, text=None, message="old"))
    stored = json.loads(json.dumps(message.to_json()))
    assert stored["alerts"][0]["text"] == {"key": "dm.hypoglycaemia.level2",
                                           "args": {"threshold": 54.0, "value": 48.0}}
    assert "text" not in stored["alerts"][1]
    assert Message.from_json(stored) == message


def test_rows_stored_before_the_catalogue_still_read_and_fall_back_to_english() -> None:
    row = {"alert_id": 3, "change": "opened", "rule": "hf.spo2", "severity": "warning",
           "category": "clinical", "message": "spo2 89 % below 90", "value": 89.0,
           "time": "2026-03-01T07:00:00Z", "level": 0, "late": False,
           "at": "2026-03-01T07:00:01Z", "reading": None}
    notice = AlertNotice.from_json(row)
    assert notice.text is None
    assert notice.in_language("fr") == "spo2 89 % below 90"
    payload = _message(notice).payload("fr")
    assert payload["alerts"][0]["text"] == "spo2 89 % below 90"
    assert payload["alerts"][0]["message_key"] is None
    assert payload["title"] == ("[Vigie] AVERTISSEMENT : patient p-1, 1 alerte - "
                                "spo2 89 % below 90")


def test_a_key_this_version_does_not_know_falls_back_to_english() -> None:
    stored = _notice().to_json() | {"text": {"key": "dm.future", "args": {"x": 1}}}
    assert AlertNotice.from_json(stored).in_language("fr") == HYPO2_EN


def test_wire_form_adds_text_and_keeps_the_english_fields() -> None:
    notice = _notice()
    for lang, text in (("en", HYPO2_EN), ("fr", HYPO2_FR)):
        wire = json.loads(_message(notice).body(lang))
        assert wire["language"] == lang
        [alert] = wire["alerts"]
        assert alert["text"] == text and alert["message"] == HYPO2_EN
        assert {k: v for k, v in alert.items() if k not in ("text", "message_key")} == \
            {k: v for k, v in notice.to_json().items() if k != "text"}


def test_french_mail_words() -> None:
    message = _message(_notice(change="escalated", level=2, late=True),
                       _notice(alert_id=9, severity="info", change="snooze_expired",
                               text=None, message="no weight for 3 days"), site=None)
    assert message.subject("fr") == \
        f"[Vigie] URGENTE (RELANCE) : patient p-1, 2 alertes - {HYPO2_FR}"
    assert message.text("fr").splitlines() == [
        "Patient p-1", "",
        f"- [urgente] non acquittée, relancée, niveau d'escalade 2 : {HYPO2_FR} "
        "(dm.hypoglycaemia)",
        "  mesure du 01/03/2026 à 08:00 (Europe/Paris) (reçue en retard), alerte n° 7",
        "- [information] fin du report : no weight for 3 days (dm.hypoglycaemia)",
        "  mesure du 01/03/2026 à 08:00 (Europe/Paris), alerte n° 9", "",
        "Référence du message : k-1"]
    assert message.text("en").splitlines()[2:4] == [
        f"- [urgent] dm.hypoglycaemia escalated, escalation level 2: {HYPO2_EN}",
        "  measured 2026-03-01 08:00 (Europe/Paris) (late), alert #7"]


def test_mail_times_in_the_routes_zone() -> None:
    """Stored times are UTC; a nurse reads her own clock, DST included, and the zone named.
    A time that is not ISO (an old row, say) is shown as stored."""
    summer = _message(_notice(time="2026-07-14T22:30:00Z"))
    assert "mesure du 15/07/2026 à 00:30 (Europe/Paris)" in summer.text("fr")
    assert "measured 2026-07-15 02:30 (Indian/Reunion)" in summer.text("en",
                                                                        "Indian/Reunion")
    assert "mesure du 14/07/2026 à 19:30 (America/Cayenne)" in summer.text(
        "fr", "America/Cayenne")
    odd = _message(_notice(time="yesterday"))
    assert "measured yesterday, alert #7" in odd.text("en")
