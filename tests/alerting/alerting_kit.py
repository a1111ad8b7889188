"""Helpers shared by the alerting tests (not a test module)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alerting.engine import Engine
from alerting.seam import AlertSignal
from alerting.settings import PatientSettings, RulesConfig
from vigie.contract import CANONICAL_UNIT, Kind, Reading

T0 = datetime(2025, 3, 1, 7, 0, tzinfo=UTC)
PID = "p-1"


def reading(kind: Kind, value: float | None, at: datetime, *, pid: str = PID,
            received: datetime | None = None, device: str = "dev-1",
            gateway: str = "gw-1", rid: str | None = None) -> Reading:
    rid = rid or hashlib.blake2b(f"{pid}|{kind}|{at.isoformat()}|{value}|{device}".encode(),
                                 digest_size=8).hexdigest()
    return Reading(id=rid, gateway_id=gateway, device_id=device, patient_id=pid, stream_seq=0,
                   kind=kind, value=value, unit=CANONICAL_UNIT[kind], measured_at=at,
                   received_at=received or at, device_time=None, clock_offset_s=0.0,
                   time_zone=None, time_trusted=True)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def engine(**patient: object) -> Engine:
    """An engine whose default patient has the given settings."""
    settings = PatientSettings.model_validate(patient)
    return Engine(RulesConfig(default=settings))


def feed(eng: Engine, readings: list[Reading]) -> list[AlertSignal]:
    out: list[AlertSignal] = []
    for r in readings:
        out += eng.evaluate(r)
    return out


def raised(signals: list[AlertSignal], rule: str) -> list[AlertSignal]:
    return [s for s in signals if s.rule == rule and not s.clear]


def weights(values: Sequence[float | None], start: datetime = T0) -> list[Reading]:
    """One weight a day from ``start``; None is a missed day."""
    return [reading(Kind.WEIGHT, v, start + days(i)) for i, v in enumerate(values)
            if v is not None]
