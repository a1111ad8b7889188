"""What is notified: ``AlertNotice`` (one alert change) and ``Message`` (a patient's changes
grouped, for one route). The JSON of a ``Message`` is the webhook body and the nurse console
payload::

    {"v": 1, "id": "<delivery key>", "site": "ehpad-1", "patient": "p-001",
     "created_at": "2026-...Z", "severity": "urgent",
     "alerts": [{"alert_id": 7, "change": "opened", "rule": "dm.hypoglycaemia",
                 "severity": "urgent", "category": "clinical", "message": "...",
                 "value": 48.0, "time": "2026-...Z", "level": 0, "late": false,
                 "at": "2026-...Z", "reading": "..."}]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from alerting.rules import RANK
from alerting.seam import Severity
from vigie.contract import now_utc

VERSION = 1


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """One alert change worth a notification (a snapshot taken when it happened)."""

    alert_id: int
    change: str  # opened, upgraded, reopened, snooze_expired, escalated
    rule: str
    severity: str
    category: str
    message: str
    value: float | None
    time: str  # measurement time of the reading that raised it (ISO)
    level: int  # escalation level
    late: bool
    at: str  # when the change happened (ISO)
    reading: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AlertNotice:
        return cls(**obj)


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

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, "id": self.key, "site": self.site, "patient": self.patient_id,
                "created_at": self.created_at, "severity": self.severity,
                "alerts": [a.to_json() for a in self.alerts]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Message:
        return cls(key=obj["id"], site=obj["site"], patient_id=obj["patient"],
                   created_at=obj["created_at"],
                   alerts=tuple(AlertNotice.from_json(a) for a in obj["alerts"]))

    def body(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True).encode()

    def subject(self) -> str:
        n = len(self.alerts)
        escalated = any(a.change == "escalated" for a in self.alerts)
        return (f"[Vigie] {self.severity.upper()}{' ESCALATED' if escalated else ''}: "
                f"patient {self.patient_id}, {n} alert{'s' if n > 1 else ''}")

    def text(self) -> str:
        lines = [f"Patient {self.patient_id}" + (f" (site {self.site})" if self.site else ""),
                 ""]
        for a in self.alerts:
            level = f", escalation level {a.level}" if a.level else ""
            lines.append(f"- [{a.severity}] {a.rule} {a.change}{level}: {a.message}")
            lines.append(f"  measured {a.time}{' (late)' if a.late else ''}, alert #{a.alert_id}")
        lines += ["", f"Message {self.key}"]
        return "\n".join(lines) + "\n"

    def email(self, sender: str, to: tuple[str, ...]) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), self.subject()
        msg["Date"] = format_datetime(now_utc())
        # the same Message-ID on every retry: mail clients and archives fold duplicates
        msg["Message-ID"] = f"<{self.key}@vigie.invalid>"
        msg["X-Vigie-Delivery"] = self.key
        msg.set_content(self.text())
        return msg
