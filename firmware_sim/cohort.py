"""A synthetic cohort with known outcomes, for benchmarking alert rules (numpy, seeded).

Heart failure: a dry weight per patient with day-to-day noise (0.5-1 kg sd: AR(1) fluid and
food component plus scale noise), a weekly rhythm (weekends heavier), a slow drift, missed
days and runs of missed days, benign gains (holidays, 1-2 kg over days, no clinical event:
alerts there are false), and decompensation episodes: fluid gain of 2-5 kg over 5-28 days
(accelerating), ending in an event (admission), a hospital stay without readings, then a new
dry weight. Chaudhry (Circulation 2007): weight rises in the weeks before admission.

Diabetes: a 5-minute true glucose (fasting level, meals at breakfast/lunch/dinner with a
gamma-shaped excursion, a slow random component, bedtime) with hypoglycaemia episodes (fall
over 30-90 min to a 40-68 mg/dL nadir, held 10-40 min, treated). Capillary patients measure
1-4 times a day (pre-meals, bedtime; 10% missed; half of symptomatic hypos checked); CGM
patients get every 5 minutes with sensor noise and signal-loss gaps.

Ground truth: ``Event`` (kind, onset, time, end, magnitude) beside the readings. Each
patient has its own generator ``default_rng([seed, index])``: patient i is the same whatever
the cohort size. Independent of ``device_drivers`` and ``alerting``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
STEP_MIN = 5
PER_DAY = 24 * 60 // STEP_MIN
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CohortReading:
    patient: str
    kind: str  # contract Kind value: weight, glucose
    value: float
    unit: str
    time: datetime
    device: str

    def to_json(self) -> dict[str, Any]:
        """The ``vigie replay`` input format."""
        return {"patient": self.patient, "kind": self.kind, "value": self.value,
                "unit": self.unit, "time": _iso(self.time), "device": self.device}


@dataclass(frozen=True, slots=True)
class Event:
    """Ground truth: decompensation (time = admission), hypoglycaemia (time = first true
    glucose < 70 mg/dL), benign_gain (not a clinical event: alerts there are false)."""

    patient: str
    kind: str
    onset: datetime
    time: datetime
    end: datetime
    magnitude: float  # kg gained, or nadir mg/dL

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(onset=_iso(self.onset), time=_iso(self.time), end=_iso(self.end))
        return out


@dataclass(frozen=True, slots=True)
class PatientSpec:
    id: str
    profile: str  # heart_failure or diabetes
    age: int
    cgm: bool = False

    def settings(self) -> dict[str, Any]:
        """Per-patient settings in the rules-file format (alerting.settings)."""
        return {"profile": self.profile, "age": self.age}


@dataclass(slots=True)
class PatientData:
    spec: PatientSpec
    readings: list[CohortReading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CohortOptions:
    patients: int = 200
    days: int = 180
    seed: int = 1
    hf_fraction: float = 0.6
    cgm_fraction: float = 0.3  # of diabetic patients
    decompensations_per_year: float = 1.0
    benign_gains_per_year: float = 2.0
    hypos_per_week: float = 1.0
    start: datetime = START


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _day(opts: CohortOptions, day: float) -> datetime:
    return opts.start + timedelta(days=float(day))


# -- heart failure --------------------------------------------------------------------


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> FloatArray:
    """AR(1) series with marginal standard deviation ``sd``."""
    eps = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def _episodes(rng: np.random.Generator, days: int, per_year: float,
              length: tuple[float, float], busy: np.ndarray) -> list[tuple[float, float]]:
    """Poisson episode starts (day, length) that do not overlap ``busy`` days."""
    out: list[tuple[float, float]] = []
    t = rng.exponential(365.0 / per_year) if per_year > 0 else days
    while t < days:
        dur = rng.uniform(*length)
        lo, hi = int(t), min(days, int(t + dur) + 12)
        if t + dur < days - 1 and not busy[lo:hi].any():  # the event itself is observed
            out.append((t, dur))
            busy[lo:hi] = True
        t += dur + rng.exponential(365.0 / per_year)
    return out


def _hf_fluid(rng: np.random.Generator, opts: CohortOptions, pid: str, spec_days: int,
              events: list[Event]) -> tuple[FloatArray, np.ndarray]:
    """Fluid/benign gain per day and the days in hospital (no readings)."""
    fluid = np.zeros(spec_days)
    absent = np.zeros(spec_days, dtype=bool)
    busy = np.zeros(spec_days + 40, dtype=bool)
    busy[:35] = True  # first weeks: baseline for every rule
    days = np.arange(spec_days, dtype=float)
    for onset, dur in _episodes(rng, spec_days, opts.decompensations_per_year, (5, 28), busy):
        gain, power = rng.uniform(2.0, 5.0), rng.uniform(1.0, 2.0)
        x = np.clip((days - onset) / dur, 0, None)
        fluid += np.where(x <= 1, gain * x**power, 0.0)
        stay = int(rng.integers(3, 11))
        event_day = int(np.ceil(onset + dur))
        absent[event_day:event_day + stay] = True
        fluid[event_day + stay:] -= rng.uniform(0.0, 1.5)  # new, lower dry weight
        events.append(Event(pid, "decompensation", _day(opts, onset), _day(opts, onset + dur),
                            _day(opts, event_day + stay), round(gain, 2)))
    for onset, dur in _episodes(rng, spec_days, opts.benign_gains_per_year, (3, 10), busy):
        gain = rng.uniform(1.0, 2.0)
        x = (days - onset) / dur
        bump = np.where((x > 0) & (x <= 1), gain * x, 0.0)
        bump += np.where((x > 1) & (x <= 2), gain * (2 - x), 0.0)  # back down as fast
        fluid += bump
        events.append(Event(pid, "benign_gain", _day(opts, onset), _day(opts, onset + dur),
                            _day(opts, onset + 2 * dur), round(gain, 2)))
    return fluid, absent


def _hf_patient(rng: np.random.Generator, opts: CohortOptions, spec: PatientSpec
                ) -> PatientData:
    data = PatientData(spec)
    n = opts.days
    sd = rng.uniform(0.5, 1.0)
    dry = rng.uniform(55.0, 110.0)
    weekday = (np.arange(n) + opts.start.weekday()) % 7
    weekly = rng.uniform(0.1, 0.4) * np.where(weekday >= 5, 1.0, -0.4)  # heavier weekends
    body = _ar1(rng, n, 0.6, sd * 0.75) + rng.normal(0, sd * 0.66, n)
    drift = np.cumsum(rng.normal(0.0, 0.03, n))
    fluid, absent = _hf_fluid(rng, opts, spec.id, n, data.events)
    weight = dry + weekly + body + drift + fluid
    present = (rng.random(n) > rng.uniform(0.03, 0.25)) & ~absent & ~_away_runs(rng, n)
    minutes = rng.normal(7 * 60, 40, n)
    for d in np.flatnonzero(present):
        at = opts.start + timedelta(days=int(d), minutes=float(minutes[d]))
        data.readings.append(CohortReading(spec.id, "weight", round(float(weight[d]), 1), "kg",
                                           at, f"scale-{spec.id}"))
    return data


def _away_runs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Runs of missed days (travel, forgotten scale): about one run of 2-6 days per 60."""
    away = np.zeros(n, dtype=bool)
    for start in np.flatnonzero(rng.random(n) < 1 / 60):
        away[start:start + int(rng.integers(2, 7))] = True
    return away


# -- diabetes -------------------------------------------------------------------------


def _meal_curve(rng: np.random.Generator, days: int, scale: float) -> FloatArray:
    """Sum of gamma-shaped meal excursions (peak ~60 min) on a 5-minute grid."""
    n = days * PER_DAY
    out = np.zeros(n)
    kernel_t = np.arange(0, 5 * 60, STEP_MIN, dtype=float)
    kernel = (kernel_t / 60.0) * np.exp(1 - kernel_t / 60.0)
    for d in range(days):
        for hour in (7.5, 12.5, 19.5):
            at = d * PER_DAY + int((hour * 60 + rng.normal(0, 30)) / STEP_MIN)
            amp = scale * rng.uniform(30, 120)
            end = min(n, at + len(kernel))
            if 0 <= at < n:
                out[at:end] += amp * kernel[:end - at]
    return out


def _hypos(rng: np.random.Generator, opts: CohortOptions, pid: str, glucose: FloatArray,
           rate: float, events: list[Event]) -> list[tuple[int, int]]:
    """Carve hypoglycaemia episodes into ``glucose``; return (start, end) grid indices of the
    low part (for symptomatic capillary checks)."""
    n = len(glucose)
    lows: list[tuple[int, int]] = []
    t = rng.exponential(7 * PER_DAY / rate) if rate > 0 else n
    while t < n - PER_DAY:
        start = int(t)
        fall, hold, rec = (int(rng.uniform(a, b) / STEP_MIN) for a, b in
                           ((30, 90), (10, 40), (15, 30)))
        nadir = rng.uniform(40.0, 68.0)
        g0 = max(glucose[start], 90.0)
        x = np.linspace(0, 1, fall)
        glucose[start:start + fall] = g0 + (nadir - g0) * (3 * x**2 - 2 * x**3)
        hold_end = start + fall + hold
        glucose[start + fall:hold_end] = nadir + rng.normal(0, 2, hold)
        back = glucose[hold_end + rec] if hold_end + rec < n else 110.0
        glucose[hold_end:hold_end + rec] = np.linspace(nadir, back, rec)
        below = start + int(np.argmax(glucose[start:hold_end] < 70))
        at = opts.start + timedelta(minutes=STEP_MIN * start)
        events.append(Event(pid, "hypoglycaemia", at,
                            opts.start + timedelta(minutes=STEP_MIN * below),
                            opts.start + timedelta(minutes=STEP_MIN * (hold_end + rec)),
                            round(nadir, 1)))
        lows.append((start + fall, hold_end))
        t = hold_end + rec + rng.exponential(7 * PER_DAY / rate)
    return lows


def _true_glucose(rng: np.random.Generator, opts: CohortOptions, spec: PatientSpec,
                  events: list[Event]) -> tuple[FloatArray, list[tuple[int, int]]]:
    n = opts.days * PER_DAY
    fasting = rng.uniform(95.0, 170.0)
    daily = np.repeat(rng.normal(0.0, 15.0, opts.days), PER_DAY)
    slow = _ar1(rng, n, 0.99, 15.0)
    glucose = fasting + daily + slow + _meal_curve(rng, opts.days, rng.uniform(0.6, 1.6))
    glucose = np.clip(glucose, 90.0, 400.0)  # lows come from the hypo episodes only
    rate = opts.hypos_per_week * rng.uniform(0.2, 1.8)
    lows = _hypos(rng, opts, spec.id, glucose, rate, events)
    return np.clip(glucose, 39.0, 400.0), lows


def _cgm(rng: np.random.Generator, opts: CohortOptions, glucose: FloatArray
         ) -> list[tuple[int, float]]:
    n = len(glucose)
    noisy = glucose + _ar1(rng, n, 0.7, 6.0) + rng.normal(0, 2.0, n)
    keep = np.ones(n, dtype=bool)
    for start in np.flatnonzero(rng.random(n) < 2 / (14 * PER_DAY)):  # signal loss
        keep[start:start + int(rng.integers(6, 36))] = False
    return [(int(i), float(np.clip(noisy[i], 40, 400))) for i in np.flatnonzero(keep)]


def _capillary(rng: np.random.Generator, glucose: FloatArray, days: int,
               lows: list[tuple[int, int]]) -> list[tuple[int, float]]:
    per_day = int(rng.integers(1, 5))
    slots = [7.25, 12.25, 19.25, 22.5][:per_day]  # pre-meals, then bedtime
    idx = [d * PER_DAY + int((h * 60 + rng.normal(0, 20)) / STEP_MIN)
           for d in range(days) for h in slots if rng.random() > 0.1]
    idx += [int(rng.integers(a, b)) for a, b in lows if b > a and rng.random() < 0.5]
    idx = sorted(i for i in set(idx) if 0 <= i < len(glucose))
    return [(i, float(np.clip(glucose[i] * rng.normal(1.0, 0.05), 20, 600))) for i in idx]


def _dm_patient(rng: np.random.Generator, opts: CohortOptions, spec: PatientSpec
                ) -> PatientData:
    data = PatientData(spec)
    glucose, lows = _true_glucose(rng, opts, spec, data.events)
    points = _cgm(rng, opts, glucose) if spec.cgm else _capillary(rng, glucose, opts.days, lows)
    device = f"{'cgm' if spec.cgm else 'meter'}-{spec.id}"
    for i, value in points:
        at = opts.start + timedelta(minutes=STEP_MIN * i)
        data.readings.append(CohortReading(spec.id, "glucose", round(value), "mg/dL", at, device))
    return data


# -- cohort ---------------------------------------------------------------------------


def patient(opts: CohortOptions, index: int) -> PatientData:
    """Patient ``index`` of the cohort: deterministic from (seed, index) alone."""
    rng = np.random.default_rng([opts.seed, index])
    hf = rng.random() < opts.hf_fraction
    age = int(rng.integers(45, 96))
    if hf:
        spec = PatientSpec(f"hf-{index:05d}", "heart_failure", age)
        return _hf_patient(rng, opts, spec)
    spec = PatientSpec(f"dm-{index:05d}", "diabetes", age, cgm=rng.random() < opts.cgm_fraction)
    return _dm_patient(rng, opts, spec)


def iter_cohort(opts: CohortOptions) -> Iterator[PatientData]:
    """Patients one at a time (a 10,000-patient cohort never sits in memory whole)."""
    for index in range(opts.patients):
        yield patient(opts, index)


@dataclass(slots=True)
class Cohort:
    patients: list[PatientSpec]
    readings: list[CohortReading]  # in time order
    events: list[Event]


def make_cohort(opts: CohortOptions) -> Cohort:
    """All patients, readings (time order) and ground-truth events of the cohort."""
    cohort = Cohort([], [], [])
    for data in iter_cohort(opts):
        cohort.patients.append(data.spec)
        cohort.readings += data.readings
        cohort.events += data.events
    cohort.readings.sort(key=lambda r: (r.time, r.patient, r.kind))
    return cohort


def write_cohort(directory: Path, opts: CohortOptions | None = None) -> dict[str, Path]:
    """Write readings.jsonl (the ``vigie replay`` input), events.jsonl (ground truth) and
    rules.json (per-patient settings for ``--rules``) into ``directory``."""
    opts = opts or CohortOptions()
    directory.mkdir(parents=True, exist_ok=True)
    cohort = make_cohort(opts)
    paths = {name: directory / name for name in ("readings.jsonl", "events.jsonl",
                                                 "rules.json")}
    _jsonl(paths["readings.jsonl"], (r.to_json() for r in cohort.readings))
    _jsonl(paths["events.jsonl"], (e.to_json() for e in cohort.events))
    specs = {spec.id: spec.settings() for spec in cohort.patients}
    paths["rules.json"].write_text(json.dumps({"patients": specs}, indent=1) + "\n")
    return paths


def _jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
