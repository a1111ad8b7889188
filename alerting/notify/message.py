"""What is notified: ``AlertNotice`` (one alert change) and ``Message`` (a patient's changes
grouped, for one route), and how a message reads in the route's language (``language`` in
the routing file: ``en``, the default, or ``fr``).

Alert texts come from the catalogue (``alerting.messages``): a notice carries the alert's
English ``message`` as stored and its ``text`` (key and arguments), rendered in the route's
language; an alert stored without a key (before the catalogue) falls back to the English
message. The words around them (subject, "patient", severity, change) are the catalogue's
``NOTICE`` table.

``Message.payload(lang)`` is the webhook body and the nurse console payload; the fields of
version 1 keep their meaning (English ``message``), ``language``, ``title`` (the e-mail
subject) and, per alert, ``message_key`` and ``text`` (the alert in ``language``) were
added::

    {"v": 1, "id": "<delivery key>", "site": "ehpad-1", "patient": "p-001",
     "created_at": "2026-...Z", "severity": "urgent", "language": "fr",
     "title": "[Vigie] URGENTE : patient p-001, 1 alerte - Hypoglycémie de niveau 2 : ...",
     "alerts": [{"alert_id": 7, "change": "opened", "rule": "dm.hypoglycaemia",
                 "severity": "urgent", "category": "clinical",
                 "message": "level 2 hypoglycaemia 48 mg/dL (< 54)",
                 "message_key": "dm.hypoglycaemia.level2",
                 "text": "Hypoglycémie de niveau 2 : 48 mg/dL (< 54)",
                 "value": 48.0, "time": "2026-...Z", "level": 0, "late": false,
                 "at": "2026-...Z", "reading": "..."}]}

``Message.to_json`` is the stored form (the outbox): the same fields without the rendered
ones, each alert's ``text`` as ``{"key": ..., "args": {...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerting.messages import (
    DATE_FORMAT,
    DEFAULT_LANGUAGE,
    DEFAULT_ZONE,
    Arg,
    MessageError,
    Text,
    render_notice,
    render_or,
)
from alerting.rules import RANK
from alerting.seam import Severity
from vigie.contract import now_utc

VERSION = 1


def say(key: str, lang: str, /, **args: Arg) -> str:
    """A ``NOTICE`` text in ``lang``, in English if it has none there (a page must go out)."""
    try:
        return render_notice(key, lang, **args)
    except MessageError:
        return render_notice(key, DEFAULT_LANGUAGE, **args)


def local_time(when: str, lang: str, zone: ZoneInfo) -> str:
    """An ISO time (as stored, UTC) for a reader in ``zone``: ``26/11/2026 à 08:12
    (Europe/Paris)``. A text that is not an ISO time is given as it is."""
    try:
        t = datetime.fromisoformat(when)
    except ValueError:
        return when
    local = (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(zone)
    fmt = DATE_FORMAT.get(lang, DATE_FORMAT[DEFAULT_LANGUAGE])
    return say("notify.time", lang, date=local.strftime(fmt), clock=local.strftime("%H:%M"),
               zone=zone.key)


def word(kind: str, code: str, lang: str) -> str:
    """The name of a severity or change (``kind``) in ``lang``; the code if it has none."""
    try:
        return say(f"notify.{kind}.{code}", lang)
    except MessageError:
        return code


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """One alert change worth a notification (a snapshot taken when it happened)."""

    alert_id: int
    change: str  # opened, upgraded, reopened, snooze_expired, escalated
    rule: str
    severity: str
    category: str
    message: str  # in English, as stored with the alert
    value: float | None
    time: str  # measurement time of the reading that raised it (ISO)
    level: int  # escalation level
    late: bool
    at: str  # when the change happened (ISO)
    reading: str | None = None
    text: Text | None = None  # ``message`` as key and arguments; None: stored without

    def in_language(self, lang: str) -> str:
        """The alert's text in ``lang``: English as stored, another language rendered from the
        key and arguments, or the English message when there are none or they do not render."""
        if lang == DEFAULT_LANGUAGE:
            return self.message
        return render_or(self.text, lang, self.message)

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "text"}

    def to_json(self) -> dict[str, Any]:
        """The stored form: the fields, ``text`` as key and arguments (absent when None)."""
        out = self._fields()
        if self.text is not None:
            out["text"] = self.text.to_json()
        return out

    def payload(self, lang: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        """The wire form: the fields (``message`` in English), ``message_key`` and ``text``
        (the alert in ``lang``)."""
        return {**self._fields(), "message_key": None if self.text is None else self.text.key,
                "text": self.in_language(lang)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AlertNotice:
        """From ``to_json`` (also rows stored before ``text`` existed); unknown keys are
        ignored."""
        known = {f.name for f in fields(cls)} - {"text"}
        return cls(**{k: v for k, v in obj.items() if k in known},
                   text=Text.from_json(obj.get("text")))


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    site: str | None
    patient_id: str
    created_at: str
    alerts: tuple[AlertNotice, ...]

    @property
    def severity(self) -> str:
        return max((a.severity for a in self.alerts), key=lambda s: RANK[Severity(s)])

    @property
    def headline(self) -> AlertNotice:
        """The first of the most severe alerts."""
        return max(self.alerts, key=lambda a: RANK[Severity(a.severity)])

    def to_json(self) -> dict[str, Any]:
        """The stored form (the outbox row)."""
        return {"v": VERSION, "id": self.key, "site": self.site, "patient": self.patient_id,
                "created_at": self.created_at, "severity": self.severity,
                "alerts": [a.to_json() for a in self.alerts]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Message:
        return cls(key=obj["id"], site=obj["site"], patient_id=obj["patient"],
                   created_at=obj["created_at"],
                   alerts=tuple(AlertNotice.from_json(a) for a in obj["alerts"]))

    def payload(self, lang: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        """The webhook body and nurse console payload, in ``lang`` (module docstring)."""
        return {"v": VERSION, "id": self.key, "site": self.site, "patient": self.patient_id,
                "created_at": self.created_at, "severity": self.severity, "language": lang,
                "title": self.subject(lang),
                "alerts": [a.payload(lang) for a in self.alerts]}

    def body(self, lang: str = DEFAULT_LANGUAGE) -> bytes:
        return json.dumps(self.payload(lang), separators=(",", ":"), sort_keys=True).encode()

    def subject(self, lang: str = DEFAULT_LANGUAGE) -> str:
        escalated = any(a.change == "escalated" for a in self.alerts)
        return say("notify.subject", lang,
                   severity=word("severity", self.severity, lang).upper(),
                   escalated=say("notify.subject.escalated", lang) if escalated else "",
                   patient=self.patient_id, n=len(self.alerts),
                   headline=self.headline.in_language(lang))

    def text(self, lang: str = DEFAULT_LANGUAGE, zone: str = DEFAULT_ZONE) -> str:
        """The e-mail body: measurement times in ``zone`` (an IANA name)."""
        tz = ZoneInfo(zone)
        if self.site:
            head = say("notify.patient.site", lang, patient=self.patient_id, site=self.site)
        else:
            head = say("notify.patient", lang, patient=self.patient_id)
        lines = [head, ""]
        for a in self.alerts:
            level = say("notify.alert.level", lang, level=a.level) if a.level else ""
            lines.append(say("notify.alert", lang, severity=word("severity", a.severity, lang),
                             rule=a.rule, change=word("change", a.change, lang), level=level,
                             text=a.in_language(lang)))
            late = say("notify.alert.late", lang) if a.late else ""
            lines.append(say("notify.alert.measured", lang, time=local_time(a.time, lang, tz),
                             late=late, alert_id=a.alert_id))
        lines += ["", say("notify.footer", lang, key=self.key)]
        return "\n".join(lines) + "\n"

    def email(self, sender: str, to: tuple[str, ...], lang: str = DEFAULT_LANGUAGE,
              zone: str = DEFAULT_ZONE) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), self.subject(lang)
        msg["Date"] = format_datetime(now_utc())
        # the same Message-ID on every retry: mail clients and archives fold duplicates
        msg["Message-ID"] = f"<{self.key}@vigie.invalid>"
        msg["X-Vigie-Delivery"] = self.key
        msg.set_content(self.text(lang, zone))
        msg["Content-Language"] = lang  # after set_content, which clears Content-* headers
        return msg
