"""Replay a reading stream through the engine and the alert book, deterministically.

Input: JSON lines ``{"patient", "kind", "value", "unit", "time"}`` (optional ``received``,
``device``, ``gateway``). Units are converted to the contract's canonical ones (glucose
mmol/L -> mg/dL with 18.016, lb -> kg, kPa -> mmHg). The replay has its own clock: before
each reading it ticks every whole hour since the previous reading, then the reading's
measurement time, so silence rules fire when they would have in real time. Lines are fed
in file order (arrival order); an identical line repeated is the same reading (same id).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerting.engine import Engine
from alerting.lifecycle import AlertBook, Change
from alerting.seam import AlertSignal
from alerting.settings import RulesConfig
from alerting.state import HOUR, dt, ts
from vigie.contract import (
    CANONICAL_UNIT,
    KG_PER_LB,
    MGDL_PER_MMOLL,
    MMHG_PER_KPA,
    ContractError,
    Kind,
    Reading,
    check_id,
    iso,
    parse_iso,
    plausibility_problem,
)

# (kind, unit as written, lower-cased) -> factor to the canonical unit
_FACTORS: dict[tuple[Kind, str], float] = {
    (Kind.GLUCOSE, "mmol/l"): MGDL_PER_MMOLL,
    (Kind.WEIGHT, "lb"): KG_PER_LB,
    (Kind.WEIGHT, "lbs"): KG_PER_LB,
    **{(k, "kpa"): MMHG_PER_KPA for k in (Kind.BP_SYSTOLIC, Kind.BP_DIASTOLIC, Kind.BP_MEAN)},
}
_ALIASES = {"mg/dl": "mg/dL", "mmhg": "mm[Hg]", "bpm": "/min", "beats/min": "/min",
            "pg/ml": "pg/mL", "mg/l": "mg/L", "celsius": "Cel", "°c": "Cel"}


__all__ = ["BadLine", "LineError", "Replay", "parse_line", "read_lines", "to_canonical"]


class LineError(ValueError):
    """A replay line that cannot be a reading; the message says why."""


@dataclass(frozen=True, slots=True)
class BadLine:
    number: int
    reason: str


def _field(obj: dict[str, Any], key: str) -> Any:
    if key not in obj:
        raise LineError(f"missing field {key!r}")
    return obj[key]


def to_canonical(kind: Kind, value: float, unit: str) -> tuple[float, str]:
    """Convert a value to the canonical unit of its kind, or raise LineError."""
    canonical = CANONICAL_UNIT[kind]
    if unit == canonical or _ALIASES.get(unit.lower()) == canonical:
        return value, canonical
    factor = _FACTORS.get((kind, unit.lower()))
    if factor is None:
        raise LineError(f"unit {unit!r} not convertible to {canonical!r} for {kind}")
    return value * factor, canonical


def _kind(raw: Any) -> Kind:
    try:
        kind = Kind(raw)
    except ValueError:
        raise LineError(f"unknown kind {raw!r}") from None
    if kind is Kind.UNKNOWN:
        raise LineError("kind 'unknown' cannot be replayed")
    return kind


def _value(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise LineError(f"value must be a finite number, got {raw!r}")
    return float(raw)


def _time(obj: dict[str, Any], key: str, default: datetime | None = None) -> datetime:
    raw = obj.get(key)
    if raw is None and default is not None:
        return default
    if not isinstance(raw, str):
        raise LineError(f"{key!r} must be an ISO 8601 string with a zone, got {raw!r}")
    return parse_iso(raw)


def parse_line(text: str) -> Reading:
    """One JSON line -> Reading in canonical units. Raises LineError."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"not JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise LineError("not a JSON object")
    try:
        return _reading(obj)
    except ContractError as exc:
        raise LineError(str(exc)) from None


def _reading(obj: dict[str, Any]) -> Reading:
    patient = check_id(_field(obj, "patient"), "patient")
    kind = _kind(_field(obj, "kind"))
    raw_value, raw_unit = _value(_field(obj, "value")), _field(obj, "unit")
    if not isinstance(raw_unit, str):
        raise LineError(f"unit must be a string, got {raw_unit!r}")
    value, unit = to_canonical(kind, raw_value, raw_unit)
    problem = plausibility_problem(kind, value, unit)
    if problem:
        raise LineError(problem)
    _field(obj, "time")
    measured = _time(obj, "time")
    received = _time(obj, "received", measured)
    device = check_id(obj.get("device", f"replay-{kind}"), "device")
    gateway = check_id(obj.get("gateway", "replay"), "gateway")
    digest = hashlib.blake2b(json.dumps([patient, str(kind), value, iso(measured), device])
                             .encode(), digest_size=16).hexdigest()
    return Reading(id=digest, gateway_id=gateway, device_id=device, patient_id=patient,
                   stream_seq=0, kind=kind, value=value, unit=unit, measured_at=measured,
                   received_at=received, device_time=None, clock_offset_s=0.0,
                   time_zone=None, time_trusted=True, original_value=raw_value,
                   original_unit=raw_unit)


def read_lines(lines: Iterable[str]) -> Iterator[Reading | BadLine]:
    """Parse numbered lines; blank lines are skipped, bad ones yielded as BadLine."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield parse_line(text)
        except LineError as exc:
            yield BadLine(number, str(exc))


def alert_record(change: Change) -> dict[str, Any]:
    alert = change.alert
    return {"patient": alert.patient_id, "rule": alert.rule, "severity": str(alert.severity),
            "category": str(alert.category), "time": iso(alert.time), "value": alert.value,
            "message": alert.message, "late": alert.late, "event": change.kind}


class Replay:
    """Engine + alert book on the replay's own clock."""

    REPORTED = frozenset({"opened", "upgraded", "reopened"})

    def __init__(self, config: RulesConfig | None = None) -> None:
        self.engine = Engine(config)
        self.book = AlertBook()
        self._clock: float | None = None

    def feed(self, reading: Reading) -> list[dict[str, Any]]:
        """Advance the clock to the reading's measurement time, evaluate it; return the
        alerts raised (opened, or upgraded to a higher severity) as records."""
        signals = self._advance(ts(reading.measured_at))
        signals += self.engine.evaluate(reading)
        return self._apply(signals, reading.measured_at)

    def _advance(self, t: float) -> list[AlertSignal]:
        signals: list[AlertSignal] = []
        if self._clock is not None:
            hour = (self._clock // HOUR + 1) * HOUR
            while hour < t:
                signals += self._apply_tick(hour)
                hour += HOUR
        if self._clock is None or t > self._clock:
            self._clock = t
            signals += self.engine.tick(dt(t))
        return signals

    def _apply_tick(self, t: float) -> list[AlertSignal]:
        self._clock = t
        return self.engine.tick(dt(t))

    def _apply(self, signals: list[AlertSignal], now: datetime) -> list[dict[str, Any]]:
        records = []
        clock = dt(self._clock) if self._clock is not None else now
        for signal in signals:
            change = self.book.on_signal(signal, max(clock, signal.time))
            if change is not None and change.kind in self.REPORTED:
                records.append(alert_record(change))
        return records
