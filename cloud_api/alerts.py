"""Alert store: signals from the rules become alerts with a recorded lifecycle.

One live alert per patient and rule (states ``open``, ``acknowledged``, ``snoozed``): a new
signal for the same patient and rule updates it (count, last value, severity upwards) instead of
opening another. A ``clear`` signal resolves it. Every transition is an ``AlertEvent`` with who
and when.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.seam import AlertSignal, Severity
from cloud_api.db import Alert, AlertEvent
from vigie.contract import now_utc

LIVE_STATES = ("open", "acknowledged", "snoozed")
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.URGENT: 2}


class AlertNotFound(LookupError):
    pass


class AlertStateError(ValueError):
    pass


def _event(session: Session, alert: Alert, who: str, to_state: str, comment: str | None = None,
           at: datetime | None = None) -> None:
    seq = session.scalar(select(func.count()).where(AlertEvent.alert_id == alert.id)) or 0
    session.add(AlertEvent(alert_id=alert.id, seq=seq + 1, at=at or now_utc(), who=who,
                           from_state=None if seq == 0 else alert.state, to_state=to_state,
                           comment=comment))


class LiveIndex:
    """Which (patient, rule) has a live alert, and its id: a cache of the alerts table.

    Only the ingest worker that owns a patient opens and resolves that patient's alerts (the
    API only acknowledges, which keeps an alert live), so the worker may keep this in memory
    and spare a query per signal; most signals are "still fine" clears of nothing.
    """

    def __init__(self, session: Session) -> None:
        rows = session.execute(select(Alert.patient_id, Alert.rule, Alert.id)
                               .where(Alert.state.in_(LIVE_STATES)))
        self._ids: dict[tuple[str, str], int] = {(p, r): i for p, r, i in rows}

    def get(self, session: Session, patient: str, rule: str) -> Alert | None:
        alert_id = self._ids.get((patient, rule))
        alert = None if alert_id is None else session.get(Alert, alert_id)
        if alert is not None and alert.state not in LIVE_STATES:
            alert = None  # resolved elsewhere (should not happen: see class docstring)
        return alert

    def opened(self, alert: Alert) -> None:
        self._ids[(alert.patient_id, alert.rule)] = alert.id

    def closed(self, alert: Alert) -> None:
        self._ids.pop((alert.patient_id, alert.rule), None)


def apply_signals(session: Session, signals: Iterable[AlertSignal], live: LiveIndex
                  ) -> list[Alert]:
    """Apply signals inside the caller's transaction; returns alerts opened by them.

    ``live`` must be updated only if the transaction commits: callers rebuild it on failure.
    """
    opened: list[Alert] = []
    for sig in signals:
        alert = live.get(session, sig.patient_id, sig.rule)
        if sig.clear:
            if alert is not None and sig.time >= alert.last_at:
                _event(session, alert, "system", "resolved", sig.message)
                alert.state = "resolved"
                live.closed(alert)
            continue
        if alert is None:
            alert = Alert(patient_id=sig.patient_id, rule=sig.rule, severity=str(sig.severity),
                          category=str(sig.category), state="open", opened_at=sig.time,
                          last_at=sig.time, raised_at=now_utc(), value=sig.value,
                          message=sig.message, reading_id=sig.reading_id, late=sig.late, count=1)
            session.add(alert)
            session.flush()
            _event(session, alert, "system", "open", sig.message)
            live.opened(alert)
            opened.append(alert)
        elif sig.reading_id != alert.reading_id:
            alert.count += 1
            if sig.time >= alert.last_at:
                alert.last_at, alert.value, alert.message = sig.time, sig.value, sig.message
                alert.reading_id = sig.reading_id
            if _RANK[sig.severity] > _RANK[Severity(alert.severity)]:
                alert.severity = str(sig.severity)
    return opened


def acknowledge(sessions: sessionmaker[Session], alert_id: int, who: str, comment: str | None
                ) -> Alert:
    with sessions.begin() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise AlertNotFound(alert_id)
        return acknowledge_in(session, alert, who, comment)


def acknowledge_in(session: Session, alert: Alert, who: str, comment: str | None) -> Alert:
    """Acknowledge inside the caller's transaction (the API audits in the same one)."""
    if alert.state not in ("open", "snoozed"):
        raise AlertStateError(f"alert {alert.id} is {alert.state}, not open")
    _event(session, alert, who, "acknowledged", comment)
    alert.state = "acknowledged"
    return alert


def history(sessions: sessionmaker[Session], alert_id: int) -> list[AlertEvent]:
    with sessions() as session:
        return list(session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                    .order_by(AlertEvent.seq)))
