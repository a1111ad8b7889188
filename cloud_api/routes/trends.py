"""A patient's trends: downsampled series, weight baseline band, glucose time in range, and
the patient's alerts on the same time axis (everything the patient page draws, in one call).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from alerting.settings import PatientSettings
from cloud_api import audit, series
from cloud_api.db import Alert, PatientProfile
from cloud_api.errors import StoreRejected, StoreUnavailable
from cloud_api.routes.alerts import AlertOut, _alert_out
from cloud_api.routes.deps import AUTH_ERRORS, ID_PATTERN, Ctx, IsoTime, Staff, audited
from cloud_api.routes.registry import visible_patient
from vigie.contract import ContractError, Kind, iso, now_utc

router = APIRouter(tags=["patients"], responses=AUTH_ERRORS)
PatientId = Annotated[str, Path(pattern=ID_PATTERN)]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such patient at the caller's sites"},
    503: {"description": "time-series store unavailable"}}
CHART_KINDS = (Kind.WEIGHT, Kind.GLUCOSE, Kind.BP_SYSTOLIC, Kind.BP_DIASTOLIC, Kind.SPO2,
               Kind.HEART_RATE)
GLUCOSE_RANGE = (70.0, 180.0)  # mg/dL, target range of the TIR consensus (Battelino 2019)
BASELINE_DAYS = 28  # hf.weight_baseline: mean of the previous 28 days
BASELINE_KG = 2.0  # hf.weight_baseline default threshold (Gyllensten)
MAX_RANGE = timedelta(days=366)
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


class Point(BaseModel):
    t: str
    mean: float
    min: float
    max: float
    n: int


class TrendOut(BaseModel):
    patient: str
    start: str
    end: str
    interval_s: int | None = Field(description="bucket width; null: raw readings")
    series: dict[str, list[Point]]
    weight_baseline: list[dict[str, Any]]
    glucose_range: tuple[float, float]
    time_in_range: list[dict[str, Any]]
    alerts: list[AlertOut]
    day_zone: str = Field(description="IANA zone of the local days of the daily summaries")


def _range(start: datetime | None, end: datetime | None, days: int) -> tuple[datetime, datetime]:
    """The range asked, cut to its last 366 days; an empty one if start is not before end."""
    end_ = min(max(end or now_utc() + timedelta(minutes=5), EARLIEST + MAX_RANGE), LATEST)
    start_ = max(start or end_ - timedelta(days=days), end_ - MAX_RANGE)
    return min(start_, end_), end_


def _baseline_kg(settings: dict[str, Any] | None) -> float:
    thresholds = PatientSettings.model_validate(
        {k: v for k, v in (settings or {}).items() if k == "thresholds"}).thresholds
    return float(thresholds.get("hf.weight_baseline", {}).get("kg", BASELINE_KG))


@router.get("/patients/{patient}/trend", responses=ERRORS)
def trend(ctx: Ctx, who: Staff, patient: PatientId, start: IsoTime | None = None,
          end: IsoTime | None = None,
          days: Annotated[int, Query(ge=1, le=366)] = 14) -> TrendOut:
    """What the patient page draws, downsampled in InfluxDB for long ranges.

    Range: ``start``..``end`` (default: the ``days`` before now; at most the last 366 days of
    it). Series are raw up to 36 h,
    then mean/min/max per bucket (at most 400 per kind).

    The daily summaries are per *local* day of the deployment's zone (``day_zone``, set by
    ``vigie cloud run --day-zone``, default Europe/Paris), midnight to midnight, 23 or 25 hours
    on DST days: a reading at 00:30 local time counts for that day. ``time_in_range[].day``
    and ``weight_baseline[].day`` are local ISO dates (``2026-03-29``); ``weight_baseline[].t``
    is the instant that local day starts (UTC), the band's mean is over the 28 local days
    before it.
    """
    start_, end_ = _range(start, end, days)
    note = audit.Note(who.username, "trend.read", f"/patients/{patient}/trend",
                      patient=patient)
    with audited(ctx, note) as session:
        visible_patient(session, who, patient, note)
        prof = session.get(PatientProfile, patient)
        alerts = session.scalars(select(Alert).where(
            Alert.patient_id == patient, Alert.last_at >= start_, Alert.opened_at < end_,
            or_(Alert.state != "resolved", Alert.opened_at >= start_))
            .order_by(Alert.opened_at))
        out_alerts = [_alert_out(a) for a in alerts]
        width = series.choose_interval(start_, end_)
        try:
            return _trend(ctx, patient, note.site, start_, end_, width,
                          _baseline_kg(prof.settings if prof else None), out_alerts)
        except ContractError as exc:
            raise HTTPException(422, str(exc)) from exc
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc


def _trend(ctx: Ctx, patient: str, site: str | None, start: datetime, end: datetime,
           width: timedelta | None, band_kg: float, alerts: list[AlertOut]) -> TrendOut:
    zone = ctx.day_zone
    data = series.trend(ctx.store, patient, [str(k) for k in CHART_KINDS], start, end, site,
                        width)
    first = series.day_start(series.local_day(start, zone) - timedelta(days=BASELINE_DAYS),
                             zone)  # whole local days behind the band's first day
    weights = series.daily(ctx.store, patient, "weight", first, end, site, zone=zone)
    tir = series.time_in_range(ctx.store, patient, start, end, site, *GLUCOSE_RANGE,
                               zone=zone)
    return TrendOut(
        patient=patient, start=iso(start), end=iso(end),
        interval_s=int(width.total_seconds()) if width else None,
        series={k: [Point(**b.as_dict()) for b in v] for k, v in data.items()},
        weight_baseline=series.baseline_band(weights, start, end, BASELINE_DAYS, band_kg,
                                             zone=zone),
        glucose_range=GLUCOSE_RANGE, time_in_range=tir, alerts=alerts, day_zone=zone.key)


@router.get("/patients/{patient}/aggregates", responses=ERRORS)
def aggregates(ctx: Ctx, who: Staff, patient: PatientId, kind: Kind,
               start: IsoTime | None = None, end: IsoTime | None = None,
               interval: Annotated[int | None, Query(ge=60, le=7 * 86400,
                                                     description="bucket width (s)")] = None
               ) -> list[Point]:
    """One kind's mean/min/max per bucket (width chosen from the range unless given)."""
    start_, end_ = _range(start, end, 30)
    width = timedelta(seconds=interval) if interval else (
        series.choose_interval(start_, end_) or timedelta(minutes=5))
    width = timedelta(minutes=max(1, round(width.total_seconds() / 60)))
    note = audit.Note(who.username, "aggregates.read", f"/patients/{patient}/aggregates",
                      patient=patient, detail={"kind": str(kind)})
    with audited(ctx, note) as session:
        visible_patient(session, who, patient, note)
        try:
            data = series.trend(ctx.store, patient, [str(kind)], start_, end_, note.site, width)
        except ContractError as exc:
            raise HTTPException(422, str(exc)) from exc
        except (StoreUnavailable, StoreRejected) as exc:
            raise HTTPException(503, f"time-series store: {exc}") from exc
        return [Point(**b.as_dict()) for b in data[str(kind)]]
