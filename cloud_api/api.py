"""HTTP API for clinicians and operators (FastAPI; OpenAPI docs at ``/docs``).

Authentication and tenancy come with the security work (issue 6); until then bind it to
loopback only, as ``vigie cloud run`` does by default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import alerts as alert_store
from cloud_api import queries, streams
from cloud_api.db import Alert, Gateway, Quarantine
from cloud_api.errors import StoreRejected, StoreUnavailable
from cloud_api.influx import TimeSeriesStore
from vigie.contract import ContractError, Kind, iso, now_utc


@dataclass
class ApiContext:
    store: TimeSeriesStore
    sessions: sessionmaker[Session]
    ingest_status: Callable[[], dict[str, Any]] | None = None


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
    message: str
    late: bool
    count: int


class AckIn(BaseModel):
    who: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=2000)


class EventOut(BaseModel):
    at: str
    who: str
    from_state: str | None
    to_state: str
    comment: str | None


def _alert_out(a: Alert) -> AlertOut:
    return AlertOut(id=a.id, patient=a.patient_id, rule=a.rule, severity=a.severity,
                    category=a.category, state=a.state, time=iso(a.opened_at),
                    last_time=iso(a.last_at), value=a.value, message=a.message, late=a.late,
                    count=a.count)


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="Vigie", version="0.1.0",
                  description="Remote monitoring: observations, alerts, gateways, quarantine.")

    @app.get("/health")
    def health() -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok", "influxdb": ctx.store.ping()}
        if ctx.ingest_status:
            body["ingest"] = ctx.ingest_status()
        return body

    @app.get("/patients/{patient}/observations")
    def observations(patient: str, kind: Kind | None = None,
                     start: datetime | None = None, end: datetime | None = None,
                     limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000
                     ) -> list[dict[str, Any]]:
        end_ = end or now_utc() + timedelta(minutes=5)
        start_ = start or end_ - timedelta(days=30)
        if start_.tzinfo is None or end_.tzinfo is None:
            raise HTTPException(422, "start and end need a time zone (e.g. Z)")
        try:
            return queries.observations(ctx.store, patient, kind.value if kind else None,
                                        start_, end_, limit)
        except ContractError as exc:
            raise HTTPException(422, str(exc)) from exc
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc

    @app.get("/alerts")
    def list_alerts(state: str | None = None, patient: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[AlertOut]:
        q = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if state:
            q = q.where(Alert.state == state)
        if patient:
            q = q.where(Alert.patient_id == patient)
        with ctx.sessions() as session:
            return [_alert_out(a) for a in session.scalars(q)]

    @app.post("/alerts/{alert_id}/acknowledge")
    def acknowledge(alert_id: int, body: AckIn) -> AlertOut:
        try:
            return _alert_out(alert_store.acknowledge(ctx.sessions, alert_id, body.who,
                                                      body.comment))
        except alert_store.AlertNotFound as exc:
            raise HTTPException(404, f"no alert {alert_id}") from exc
        except alert_store.AlertStateError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.get("/alerts/{alert_id}/history")
    def alert_history(alert_id: int) -> list[EventOut]:
        return [EventOut(at=iso(e.at), who=e.who, from_state=e.from_state, to_state=e.to_state,
                         comment=e.comment) for e in alert_store.history(ctx.sessions, alert_id)]

    @app.get("/quarantine")
    def quarantine(limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[dict[str, Any]]:
        with ctx.sessions() as session:
            rows = session.scalars(select(Quarantine).order_by(Quarantine.id.desc())
                                   .limit(limit))
            return [{"id": q.id, "received_at": iso(q.received_at), "topic": q.topic,
                     "gateway": q.gateway_id, "reading_id": q.reading_id, "reason": q.reason,
                     "payload": q.payload} for q in rows]

    @app.get("/gateways")
    def gateways() -> list[dict[str, Any]]:
        with ctx.sessions() as session:
            return [{"id": g.id, "site": g.site, "status": g.status,
                     "status_at": iso(g.status_at) if g.status_at else None,
                     "last_seen": iso(g.last_seen) if g.last_seen else None,
                     "outbox_depth": g.outbox_depth}
                    for g in session.scalars(select(Gateway).order_by(Gateway.id))]

    @app.get("/gaps")
    def gaps() -> list[dict[str, Any]]:
        with ctx.sessions() as session:
            return [{"gateway": g.gateway_id, "device": g.device_id, "first_seq": g.first_seq,
                     "last_seq": g.last_seq, "missing": g.last_seq - g.first_seq + 1,
                     "detected_at": iso(g.detected_at)} for g in streams.open_gaps(session)]

    return app
