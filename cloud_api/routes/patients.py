"""Patient data: observations (InfluxDB), filtered by the caller's sites and audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from cloud_api import audit, queries
from cloud_api.errors import StoreRejected, StoreUnavailable
from cloud_api.routes.deps import AUTH_ERRORS, ID_PATTERN, Ctx, IsoTime, Staff, audited, not_found
from cloud_api.tenancy import patient_site
from vigie.contract import ContractError, Kind, now_utc

router = APIRouter(tags=["patients"], responses=AUTH_ERRORS)


@router.get("/patients/{patient}/observations",
            responses={404: {"description": "no such patient at the caller's sites"},
                       503: {"description": "time-series store unavailable"}})
def observations(ctx: Ctx, who: Staff,
                 patient: Annotated[str, Path(pattern=ID_PATTERN)],
                 kind: Kind | None = None, start: IsoTime | None = None,
                 end: IsoTime | None = None,
                 limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000
                 ) -> list[dict[str, Any]]:
    """A patient's readings between ``start`` (default: 30 days before ``end``) and ``end``."""
    end_ = end or now_utc() + timedelta(minutes=5)
    start_ = start or end_ - timedelta(days=30)
    note = audit.Note(who.username, "observations.read", f"/patients/{patient}/observations",
                      patient=patient)
    with audited(ctx, note) as session:
        _, note.site = patient_site(session, patient)
        if not who.sees(note.site):
            raise not_found(f"patient {patient}")
        try:
            rows = queries.observations(ctx.store, patient, kind.value if kind else None,
                                        start_, end_, limit, site=note.site)
        except ContractError as exc:
            raise HTTPException(422, str(exc)) from exc
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc
        note.detail["count"] = len(rows)
        return rows
