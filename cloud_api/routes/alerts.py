"""Alerts: list, acknowledge, history; filtered by the caller's sites and audited.

An alert of another site answers 404 like an absent one, so ids do not leak existence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api import alerts as alert_store
from cloud_api import audit
from cloud_api.context import ApiContext
from cloud_api.db import Alert, AlertEvent, AlertEventText
from cloud_api.routes.deps import (
    AUTH_ERRORS,
    BODY_ERRORS,
    ID_PATTERN,
    Ctx,
    Staff,
    audited,
    not_found,
)
from cloud_api.security import Principal
from cloud_api.tenancy import patient_clause, patient_site
from vigie.contract import iso

router = APIRouter(tags=["alerts"], responses=AUTH_ERRORS)
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # alerts.id: INTEGER on PostgreSQL


class AlertOut(BaseModel):
    id: int
    patient: str
    rule: str
    severity: str
    category: str
    state: str
    time: str = Field(description="measurement time of the reading that raised it")
    last_time: str
    value: float | None
    message: str = Field(description="what the rule found, in English")
    messages: dict[str, str] = Field(
        description="the message per language code (en, fr); a language is missing when the "
                    "alert cannot be rendered in it: then show ``message``")
    message_key: str | None = Field(
        description="the message's key in the catalogue (alerting.messages); None for alerts "
                    "stored without one")
    late: bool
    count: int


class AckIn(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)


class EventOut(BaseModel):
    at: str
    who: str
    from_state: str | None
    to_state: str
    comment: str | None
    # the system's own lines in every language (``{"en": ..., "fr": ...}``); None for a
    # clinician's comment, shown as written
    messages: dict[str, str] | None = None


def _alert_out(a: Alert) -> AlertOut:
    text = alert_store.alert_text(a)
    return AlertOut(id=a.id, patient=a.patient_id, rule=a.rule, severity=a.severity,
                    category=a.category, state=a.state, time=iso(a.opened_at),
                    last_time=iso(a.last_at), value=a.value, message=a.message,
                    messages=alert_store.alert_messages(a),
                    message_key=text.key if text is not None else None, late=a.late,
                    count=a.count)


def _visible_alert(session: Session, who: Principal, alert_id: int, note: audit.Note
                   ) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is not None:
        note.patient = alert.patient_id
        _, note.site = patient_site(session, alert.patient_id)
    if alert is None or not who.sees(note.site):
        raise not_found(f"alert {alert_id}")
    return alert


@router.get("/alerts")
def list_alerts(ctx: Ctx, who: Staff, state: str | None = None,
                patient: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[AlertOut]:
    """Alerts of the caller's sites, newest first."""
    q = (select(Alert).where(patient_clause(who.sites, Alert.patient_id))
         .order_by(Alert.id.desc()).limit(limit))
    if state:
        q = q.where(Alert.state == state)
    if patient:
        q = q.where(Alert.patient_id == patient)
    note = audit.Note(who.username, "alerts.list", "/alerts", patient=patient)
    with audited(ctx, note) as session:
        out = [_alert_out(a) for a in session.scalars(q)]
        note.patients(a.patient for a in out)
        return out


@router.post("/alerts/{alert_id}/acknowledge",
             responses={**BODY_ERRORS,
                        404: {"description": "no such alert at the caller's sites"},
                        409: {"description": "the alert is not open"}})
def acknowledge(ctx: Ctx, who: Staff, alert_id: AlertId, body: AckIn) -> AlertOut:
    """Acknowledge an open alert in the caller's name."""
    return change_alert(ctx, who, alert_id, audit.Note(who.username, "alert.acknowledge",
                                                       f"/alerts/{alert_id}"),
                        lambda s, a: alert_store.acknowledge_in(s, a, who.username,
                                                                body.comment))


def change_alert(ctx: ApiContext, who: Principal, alert_id: int, note: audit.Note,
                 change: Callable[[Session, Alert], Alert]) -> AlertOut:
    """A clinician's change to an alert of their sites, audited in the same transaction;
    a change the alert's state does not allow answers 409."""
    with audited(ctx, note) as session:
        alert = _visible_alert(session, who, alert_id, note)
        try:
            return _alert_out(change(session, alert))
        except alert_store.AlertStateError as exc:
            raise HTTPException(409, str(exc)) from exc


@router.get("/alerts/{alert_id}/history",
            responses={404: {"description": "no such alert at the caller's sites"}})
def alert_history(ctx: Ctx, who: Staff, alert_id: AlertId) -> list[EventOut]:
    """Every transition of an alert, with who and when."""
    note = audit.Note(who.username, "alert.history", f"/alerts/{alert_id}/history")
    with audited(ctx, note) as session:
        _visible_alert(session, who, alert_id, note)
        events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                 .order_by(AlertEvent.seq))
        said = {t.seq: t.messages for t in session.scalars(
            select(AlertEventText).where(AlertEventText.alert_id == alert_id))}
        return [EventOut(at=iso(e.at), who=e.who, from_state=e.from_state,
                         to_state=e.to_state, comment=e.comment, messages=said.get(e.seq))
                for e in events]
