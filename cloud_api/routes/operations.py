"""Operations: health, readiness and metrics (public), gateways, stream gaps, quarantine.

``/health`` is liveness (the process serves HTTP; it asks nothing of InfluxDB or the
broker), ``/ready`` runs the checks of ``cloud_api.readiness`` (503 when one fails),
``/metrics`` is the Prometheus exposition (``cloud_api.metrics``). None of the three carries
patient data.

Gateways and gaps are for the staff of the gateway's site; quarantined payloads may hold
patient data, so they are for admins, filtered by the gateway's site, and audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client.exposition import choose_encoder
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api import audit, streams
from cloud_api.db import Gateway, Quarantine
from cloud_api.readiness import Readiness
from cloud_api.routes.deps import AUTH_ERRORS, Admin, Ctx, Staff, audited
from cloud_api.tenancy import site_clause
from vigie.contract import iso

router = APIRouter(tags=["operations"])


@router.get("/health")
def health(ctx: Ctx) -> dict[str, Any]:
    """Liveness and ingest counters (no patient data; needs no token). Asks nothing of
    InfluxDB or the broker: whether they answer is for ``/ready``."""
    body: dict[str, Any] = {"status": "ok"}
    if ctx.ingest_status:
        body["ingest"] = ctx.ingest_status()
    return body


_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "a check failed: the body names it, with the reason"}}


@router.get("/ready", responses=_READY_RESPONSES)
def ready(ctx: Ctx) -> JSONResponse:
    """Readiness: ingest worker running, broker connected, InfluxDB answering, ingest lag
    under its limit (the ingest checks only where this process runs the ingest). 200 when
    all hold, else 503; each check with ``ok`` and a short reason. Needs no token."""
    report = (ctx.readiness or Readiness(ctx.store))()
    return JSONResponse(report.to_json(), status_code=200 if report.ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition (text, or OpenMetrics when asked). Needs no token: labels are
    gateway, site, rule and reason ids, never a patient's."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics), media_type=content_type)


def _gateway_sites(session: Session) -> dict[str, str | None]:
    return {gid: site for gid, site in session.execute(select(Gateway.id, Gateway.site))}


@router.get("/gateways", responses=AUTH_ERRORS)
def gateways(ctx: Ctx, who: Staff) -> list[dict[str, Any]]:
    """Gateways of the caller's sites, with their last status."""
    q = select(Gateway).where(site_clause(who.sites, Gateway.site)).order_by(Gateway.id)
    with ctx.sessions() as session:
        return [{"id": g.id, "site": g.site, "status": g.status,
                 "status_at": iso(g.status_at) if g.status_at else None,
                 "last_seen": iso(g.last_seen) if g.last_seen else None,
                 "outbox_depth": g.outbox_depth} for g in session.scalars(q)]


@router.get("/gaps", responses=AUTH_ERRORS)
def gaps(ctx: Ctx, who: Staff) -> list[dict[str, Any]]:
    """Sequence numbers missing from the device streams of the caller's sites' gateways."""
    with ctx.sessions() as session:
        site_of = _gateway_sites(session)
        return [{"gateway": g.gateway_id, "device": g.device_id, "first_seq": g.first_seq,
                 "last_seq": g.last_seq, "missing": g.last_seq - g.first_seq + 1,
                 "detected_at": iso(g.detected_at)} for g in streams.open_gaps(session)
                if who.sees(site_of.get(g.gateway_id))]


@router.get("/quarantine", responses=AUTH_ERRORS)
def quarantine(ctx: Ctx, who: Admin,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[dict[str, Any]]:
    """Refused payloads with the reason, newest first (admins; may hold patient data)."""
    q = select(Quarantine).order_by(Quarantine.id.desc()).limit(limit)
    if who.sites is not None:
        q = q.where(Quarantine.gateway_id.in_(
            select(Gateway.id).where(site_clause(who.sites, Gateway.site))))
    note = audit.Note(who.username, "quarantine.list", "/quarantine")
    with audited(ctx, note) as session:
        rows = [{"id": r.id, "received_at": iso(r.received_at), "topic": r.topic,
                 "gateway": r.gateway_id, "reading_id": r.reading_id, "reason": r.reason,
                 "payload": r.payload} for r in session.scalars(q)]
        note.detail["count"] = len(rows)
        return rows
