"""The alert inbox: live alerts by severity and age, snooze, resolve, and a live feed.

``GET /alerts/stream`` is a server-sent events feed (``text/event-stream``, WHATWG HTML
section 9.2) of the caller's sites' alert changes: it polls the alerts table every second, so
it works with several API processes behind a load balancer and no broker in between. It is
left out of the OpenAPI document (an endless response is not something a schema-driven test
can call); ``tests/cloud_api/test_clinical_api.py`` covers its tenancy. A stream lives at most
``STREAM_MAX_S`` seconds and ends when the token expires: clients reconnect with a fresh
token and ``Last-Event-ID``, so a removed user stops receiving within that time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final

import jwt
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud_api import alerts as alert_store
from cloud_api import audit
from cloud_api.context import ApiContext
from cloud_api.db import Alert, AlertEvent
from cloud_api.routes.alerts import AlertOut, _alert_out, change_alert
from cloud_api.routes.deps import AUTH_ERRORS, BODY_ERRORS, Ctx, IsoTime, Staff, audited
from cloud_api.security import Principal
from cloud_api.tenancy import patient_clause
from vigie.contract import now_utc

router = APIRouter(tags=["alerts"], responses=AUTH_ERRORS)
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # alerts.id: INTEGER on PostgreSQL
RANK: Final = {"urgent": 0, "warning": 1, "info": 2}
UNACKNOWLEDGED: Final = ("open", "escalated")
POLL_S: Final = 1.0
STREAM_MAX_S: Final = 300.0
CHANGE_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    **BODY_ERRORS, 404: {"description": "no such alert at the caller's sites"},
    409: {"description": "the alert is not live, or the snooze is too long"}}


class InboxItem(AlertOut):
    age_s: int = Field(description="seconds since the alert was raised")
    acknowledged: bool


class SnoozeIn(BaseModel):
    until: IsoTime = Field(description="when the alert comes back (lows: within 60 min)")
    comment: str | None = Field(default=None, max_length=2000)


class CommentIn(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)


def _item(a: Alert, now: datetime) -> InboxItem:
    return InboxItem(**_alert_out(a).model_dump(), age_s=int((now - a.raised_at).total_seconds()),
                     acknowledged=a.state not in UNACKNOWLEDGED)


@router.get("/alerts/inbox")
def inbox(ctx: Ctx, who: Staff,
          limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[InboxItem]:
    """Live alerts of the caller's sites: unacknowledged first, then by severity (urgent
    first), then oldest first (the longest wait on top)."""
    q = select(Alert).where(patient_clause(who.sites, Alert.patient_id),
                            Alert.state.in_(alert_store.LIVE_STATES))
    note = audit.Note(who.username, "alerts.inbox", "/alerts/inbox")
    now = now_utc()
    with audited(ctx, note) as session:
        rows = sorted(session.scalars(q), key=lambda a: (
            a.state not in UNACKNOWLEDGED, RANK.get(a.severity, 3), a.raised_at, a.id))
        out = [_item(a, now) for a in rows[:limit]]
        note.patients(a.patient for a in out)
        return out


@router.post("/alerts/{alert_id}/snooze", responses=CHANGE_ERRORS)
def snooze(ctx: Ctx, who: Staff, alert_id: AlertId, body: SnoozeIn) -> AlertOut:
    """Snooze a live alert until a time; it comes back open by itself (a low overrides)."""
    note = audit.Note(who.username, "alert.snooze", f"/alerts/{alert_id}",
                      detail={"until": body.until.isoformat()})
    return change_alert(ctx, who, alert_id, note, lambda s, a: alert_store.snooze_in(
        s, a, who.username, body.until, body.comment))


@router.post("/alerts/{alert_id}/resolve", responses=CHANGE_ERRORS)
def resolve(ctx: Ctx, who: Staff, alert_id: AlertId, body: CommentIn) -> AlertOut:
    """Close a live alert by hand, saying what was done."""
    note = audit.Note(who.username, "alert.resolve", f"/alerts/{alert_id}")
    return change_alert(ctx, who, alert_id, note, lambda s, a: alert_store.resolve_in(
        s, a, who.username, body.comment))


# --- live feed --------------------------------------------------------------------------

def _changes(ctx: ApiContext, who: Principal, after: int) -> tuple[int, list[dict[str, Any]]]:
    """Alert events after event id ``after`` at the caller's sites, with the alert as it is."""
    q = (select(AlertEvent, Alert).join(Alert, Alert.id == AlertEvent.alert_id)
         .where(AlertEvent.id > after, patient_clause(who.sites, Alert.patient_id))
         .order_by(AlertEvent.id).limit(200))
    last, out = after, []
    with ctx.sessions() as session:
        for event, alert in session.execute(q):
            last = event.id
            out.append({"event": event.id, "change": event.to_state, "who": event.who,
                        "alert": _alert_out(alert).model_dump()})
    return last, out


def _top(ctx: ApiContext) -> int:
    with ctx.sessions() as session:
        return session.scalar(select(AlertEvent.id).order_by(AlertEvent.id.desc()).limit(1)) or 0


def _seconds_left(ctx: ApiContext, request: Request) -> float:
    """Seconds before the caller's token (already verified) expires."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    claims = jwt.decode(token, ctx.tokens.secret, algorithms=["HS256"])
    return float(claims["exp"]) - time.time()


def _audit_stream(ctx: ApiContext, who: Principal, changes: list[dict[str, Any]]) -> None:
    note = audit.Note(who.username, "alerts.stream", "/alerts/stream")
    note.patients(str(c["alert"]["patient"]) for c in changes)
    audit.write_apart(ctx.sessions, note.row("ok"))


async def _feed(request: Request, ctx: ApiContext, who: Principal, after: int,
                expires_in: float) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(STREAM_MAX_S, expires_in)
    if after < 0:  # a fresh client: start from now, the inbox call gave it the past
        after = await asyncio.to_thread(_top, ctx)
    yield f"retry: 2000\nid: {after}\nevent: hello\ndata: {{}}\n\n"
    while loop.time() < deadline and not await request.is_disconnected():
        after, changes = await asyncio.to_thread(_changes, ctx, who, after)
        if changes:
            await asyncio.to_thread(_audit_stream, ctx, who, changes)
        for c in changes:
            yield f"id: {c['event']}\nevent: alert\ndata: {json.dumps(c)}\n\n"
        if not changes:
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


def stream_response(request: Request, ctx: ApiContext, who: Principal, after: int,
                    expires_in: float) -> StreamingResponse:
    return StreamingResponse(_feed(request, ctx, who, after, expires_in),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/alerts/stream", include_in_schema=False)
def alert_stream(request: Request, ctx: Ctx, who: Staff,
                 last_event_id: Annotated[str | None, Header()] = None,
                 after: Annotated[int | None, Query(ge=-1)] = None,
                 seconds: Annotated[float, Query(gt=0, le=STREAM_MAX_S)] = STREAM_MAX_S
                 ) -> StreamingResponse:
    """Server-sent events: ``event: alert`` with the change and the alert, per change.

    Starts after event ``Last-Event-ID`` (or ``after``), else from now; ends after
    ``seconds`` or when the token expires, whichever comes first."""
    start = after if after is not None else -1
    if last_event_id and last_event_id.isdigit():
        start = int(last_event_id)
    return stream_response(request, ctx, who, start,
                           min(seconds, _seconds_left(ctx, request)))
