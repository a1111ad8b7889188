"""Readings to attribute: what shared devices measured for nobody the gateway knew.

A ward scale's unknown user slot, or a point-of-care result keyed with a patient id the
gateway has no mapping for, is stored under ``_unattributed`` with its site: nothing is lost.
A nurse of that site assigns it to one of the site's patients; the point is rewritten under
the patient and the unattributed copy deleted (``cloud_api.series``), and the assignment is
audited with the reading id. The rules do not see an assigned reading (they run in ingest).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from cloud_api import audit, series
from cloud_api.errors import StoreRejected, StoreUnavailable
from cloud_api.points import from_ns
from cloud_api.routes.deps import (
    AUTH_ERRORS,
    BODY_ERRORS,
    ID_PATTERN,
    Ctx,
    Staff,
    audited,
    not_found,
)
from cloud_api.routes.registry import visible_patient
from vigie.contract import ContractError, iso

router = APIRouter(tags=["attribution"], responses=AUTH_ERRORS)
ReadingId = Annotated[str, Path(pattern=ID_PATTERN)]
STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "time-series store unavailable"}}


class PendingReading(BaseModel):
    id: str
    time: str
    kind: str | None
    value: float | None
    unit: str | None
    original_value: float | None
    original_unit: str | None
    device: str | None
    gateway: str | None
    site: str | None


class AssignIn(BaseModel):
    patient: str = Field(pattern=ID_PATTERN)


class AssignOut(BaseModel):
    reading: str
    patient: str
    time: str
    kind: str | None


def _pending(row: dict[str, Any]) -> PendingReading:
    def num(key: str) -> float | None:
        v = row.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    def text(key: str) -> str | None:
        v = row.get(key)
        return None if v is None else str(v)

    return PendingReading(id=str(row.get("id")), time=iso(from_ns(int(row["time"]))),
                          kind=text("kind"), value=num("value"), unit=text("unit"),
                          original_value=num("original_value"),
                          original_unit=text("original_unit"), device=text("device"),
                          gateway=text("gateway"), site=text("site"))


@router.get("/attribution", responses=STORE_DOWN)
def pending(ctx: Ctx, who: Staff,
            limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[PendingReading]:
    """Unattributed readings of the caller's sites, newest first."""
    note = audit.Note(who.username, "attribution.list", "/attribution")
    with audited(ctx, note):
        try:
            rows = series.unattributed(ctx.store, who.sites, limit)
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc
        note.detail["count"] = len(rows)
        return [_pending(r) for r in rows if r.get("id") is not None]


@router.post("/attribution/{reading_id}",
             responses={**BODY_ERRORS, **STORE_DOWN,
                        404: {"description": "no such reading or patient at the caller's "
                                             "sites (the patient must be of the reading's)"}})
def assign(ctx: Ctx, who: Staff, reading_id: ReadingId, body: AssignIn) -> AssignOut:
    """Assign an unattributed reading to a patient of the same site."""
    note = audit.Note(who.username, "reading.attribute", f"/attribution/{reading_id}",
                      patient=body.patient, detail={"reading": reading_id})
    with audited(ctx, note) as session:
        try:
            rows = series.unattributed(ctx.store, who.sites, 1, reading_id=reading_id)
        except ContractError as exc:
            raise not_found(f"reading {reading_id}") from exc
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc
        if not rows:
            raise not_found(f"reading {reading_id}")
        row = rows[0]
        patient = visible_patient(session, who, body.patient, note)
        if patient.site_id != row.get("site"):
            raise not_found(f"patient {body.patient}")
        note.detail["kind"] = row.get("kind")
        try:
            ctx.store.write([series.reattributed_line(row, body.patient)])
            series.delete_unattributed(ctx.store, row)
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc
        return AssignOut(reading=reading_id, patient=body.patient,
                         time=iso(from_ns(int(row["time"]))), kind=row.get("kind"))
