"""``GET /fhir/Observation``: a patient's readings as a FHIR R4 searchset Bundle.

Same tenancy and audit as ``/patients/{patient}/observations``; errors answer an
OperationOutcome (R4 section 3.1.0.4). See ``cloud_api.fhir`` for the mapping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from cloud_api import audit, fhir, queries
from cloud_api.errors import StoreRejected, StoreUnavailable
from cloud_api.routes.deps import AUTH_ERRORS, Ctx, Staff, audited
from cloud_api.routes.registry import visible_patient
from vigie.contract import ContractError, now_utc

MAX_READINGS = 50_000
ALL_TIME = fhir.DateRange(datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


class FhirJSONResponse(JSONResponse):
    media_type = "application/fhir+json"


router = APIRouter(tags=["fhir"], responses=AUTH_ERRORS)
FHIR_JSON: dict[str, Any] = {"application/fhir+json": {}}


@router.get("/fhir/Observation", response_class=FhirJSONResponse,
            responses={200: {"description": "a searchset Bundle", "content": FHIR_JSON},
                       400: {"description": "bad search parameter, with Prefer: "
                                            "handling=strict (OperationOutcome)"},
                       404: {"description": "no such patient at the caller's sites"},
                       503: {"description": "time-series store unavailable"}})
def search_observations(
        request: Request, ctx: Ctx, who: Staff,
        patient: Annotated[str, Query(pattern=r"^(Patient/)?[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
                                      description="patient id or Patient/id")],
        date: Annotated[list[str] | None, Query(max_length=4, description=(
            "e.g. date=ge2026-01-01&date=lt2026-02-01 (prefixes eq ge gt le lt)"))] = None,
        prefer: Annotated[str | None, Header(description=(
            "handling=strict: a bad parameter answers 400 instead of an empty Bundle"))] = None,
) -> FhirJSONResponse:
    """Observations of one patient (vital-signs profile; laboratory results too)."""
    pid = fhir.patient_id(patient)
    base = str(request.base_url).rstrip("/") + "/fhir"
    try:
        span = fhir.date_range(date or [], ALL_TIME)
    except fhir.SearchError as exc:
        if "handling=strict" in (prefer or ""):
            return FhirJSONResponse(fhir.outcome(str(exc)), status_code=400)
        # lenient handling (R4 section 3.1.1.5.11): an empty set, saying why
        return FhirJSONResponse(fhir.bundle([], base, str(request.url),
                                            [fhir.outcome(str(exc), severity="warning")]))
    note = audit.Note(who.username, "fhir.observations", "/fhir/Observation", patient=pid)
    with audited(ctx, note) as session:
        visible_patient(session, who, pid, note)
        if span.start >= span.end:
            rows: list[dict[str, Any]] = []
        else:
            try:
                rows = queries.observations(ctx.store, pid, None, span.start,
                                            min(span.end, now_utc() + timedelta(days=1)),
                                            MAX_READINGS, site=note.site)
            except ContractError as exc:
                raise HTTPException(422, str(exc)) from exc
            except (StoreUnavailable, StoreRejected) as exc:
                raise HTTPException(503, f"time-series store: {exc}") from exc
        resources = fhir.observations(rows, pid)
        note.detail["count"] = len(resources)
    return FhirJSONResponse(fhir.bundle(resources, base, str(request.url)))
