"""How the rule engine's costs grow with the population it follows (issue 12).

    .venv/bin/python benchmarks/engine_scale.py                      # 10,000 patients
    .venv/bin/python benchmarks/engine_scale.py --patients 100000 --runs 3

One engine, as one cloud ingest holds it, fed a territory: most patients a few readings a
day (heart failure: a weight and a blood pressure; diabetes: three fingerstick glucoses), a
tenth on a 5-minute CGM stream, ``--days`` of history, every patient with care-team
settings. Printed, median over ``--runs``:

- settings: loading every patient's settings (as ``ProfileSync`` does at start), per patient;
- evaluate: readings/s while feeding the history, in time order, with a tick every 10 s of
  simulated time as the cloud does;
- tick idle: one tick with nothing due (the cloud ticks every 10 s), and a tick that finds
  every patient's weight overdue;
- memory: bytes held per patient of each profile at steady state (``--memory-days`` of
  readings, 14-day summaries full; tracemalloc over 20 patients of each), and the engine's
  memory at N patients of the territory mix, extrapolated from them; a full garbage
  collection at N.

Nothing here touches the network: it measures the engine alone. ``benchmarks/pipeline.py``
measures the whole chain.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.engine import Engine
from vigie.contract import CANONICAL_UNIT, Kind, Reading

START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Patient:
    pid: str
    profile: str  # "hf", "dm" or "cgm"


def cohort(n: int, seed: int) -> list[Patient]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        profile = "cgm" if r < 0.1 else "dm" if r < 0.55 else "hf"
        out.append(Patient(f"p-{i:06d}", profile))
    return out


def settings_of(p: Patient) -> dict[str, object]:
    if p.profile == "hf":
        return {"profile": "heart_failure", "age": 78}
    return {"profile": "diabetes", "age": 70}


def _reading(p: Patient, n: int, kind: Kind, value: float, at: datetime, device: str
             ) -> Reading:
    return Reading(id=f"{p.pid}-{kind}-{n}", gateway_id=f"gw-{p.pid}", device_id=device,
                   patient_id=p.pid, stream_seq=n, kind=kind, value=value,
                   unit=CANONICAL_UNIT[kind], measured_at=at, received_at=at,
                   device_time=None, clock_offset_s=0.0, time_zone=None, time_trusted=True)


def readings(patients: list[Patient], days: int, seed: int) -> Iterator[Reading]:
    """Every patient's readings over ``days``, merged in time order."""
    rng = random.Random(seed)
    events: list[tuple[float, int, Kind, float]] = []
    for i, p in enumerate(patients):
        offset = rng.uniform(0, 3600)
        if p.profile == "cgm":
            step, t, level = 300.0, offset, rng.uniform(110, 160)
            while t < days * 86400:
                level = min(320.0, max(60.0, level + rng.gauss(0, 4)))
                events.append((t, i, Kind.GLUCOSE, round(level)))
                t += step
        for day in range(days):
            base = day * 86400 + 7 * 3600 + offset
            if p.profile == "hf":
                events.append((base, i, Kind.WEIGHT, round(72 + rng.gauss(0, 0.4), 1)))
                events.append((base + 60, i, Kind.BP_SYSTOLIC, round(rng.gauss(128, 8))))
            elif p.profile == "dm":
                for h in (0, 5, 11):
                    events.append((base + h * 3600, i, Kind.GLUCOSE,
                                   round(rng.gauss(150, 30))))
    events.sort()
    counters = [0] * len(patients)
    for t, i, kind, value in events:
        p = patients[i]
        counters[i] += 1
        device = "cgm" if p.profile == "cgm" and kind is Kind.GLUCOSE else str(kind)
        yield _reading(p, counters[i], kind, value, START + timedelta(seconds=t),
                       f"{p.pid}-{device}")


def run(n: int, days: int, seed: int) -> dict[str, float]:
    patients = cohort(n, seed)
    engine = Engine()
    out: dict[str, float] = {}

    t0 = time.perf_counter()
    for p in patients:
        engine.set_patient_settings(p.pid, settings_of(p))
    out["settings µs/patient"] = (time.perf_counter() - t0) / n * 1e6

    count, next_tick = 0, START
    t0 = time.perf_counter()
    for r in readings(patients, days, seed):
        while r.measured_at >= next_tick:
            engine.tick(next_tick)
            next_tick += timedelta(seconds=10)
        engine.evaluate(r)
        count += 1
    elapsed = time.perf_counter() - t0
    out["readings"] = count
    out["evaluate readings/s"] = count / elapsed

    idle = []
    for _ in range(20):
        next_tick += timedelta(seconds=10)
        t0 = time.perf_counter()
        engine.tick(next_tick)
        idle.append(time.perf_counter() - t0)
    out["tick idle ms"] = statistics.median(idle) * 1e3

    t0 = time.perf_counter()
    engine.tick(next_tick + timedelta(days=4))  # every weight and glucose overdue
    out["tick all due s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    gc.collect()
    out["gc full s"] = time.perf_counter() - t0
    return out


def steady_memory(days: int, seed: int) -> dict[str, float]:
    """Bytes held per patient of each profile after ``days`` of readings with an hourly
    clock (tracemalloc, 20 patients of a profile in one engine)."""
    out = {}
    for profile in ("hf", "dm", "cgm"):
        patients = [Patient(f"p-{i:06d}", profile) for i in range(20)]
        engine = Engine()
        for p in patients:
            engine.set_patient_settings(p.pid, settings_of(p))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        next_tick = START
        for r in readings(patients, days, seed):
            while r.measured_at >= next_tick:
                engine.tick(next_tick)
                next_tick += timedelta(hours=1)
            engine.evaluate(r)
        out[profile] = (tracemalloc.get_traced_memory()[0] - before) / len(patients)
        tracemalloc.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=10_000, help="population (default 10,000)")
    ap.add_argument("--days", type=int, default=3, help="days of readings fed (default 3)")
    ap.add_argument("--runs", type=int, default=1, help="repetitions; medians are printed")
    ap.add_argument("--memory-days", type=int, default=16,
                    help="days fed for the steady-state memory figures (default 16)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"steady-state memory, {args.memory_days} days ...", file=sys.stderr, flush=True)
    per = steady_memory(args.memory_days, args.seed)
    mix = cohort(args.patients, args.seed)
    total = sum(per[p.profile] for p in mix)
    results = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}: {args.patients:,} patients, {args.days} days ...",
              file=sys.stderr, flush=True)
        results.append(run(args.patients, args.days, args.seed + i))
    print(f"engine at {args.patients:,} patients, {args.days} days, median of {args.runs}:")
    for key in results[0]:
        value = statistics.median(r[key] for r in results)
        print(f"  {key:<22} {value:>12,.2f}")
    for profile, held in per.items():
        print(f"  memory kB/{profile + ' patient':<12} {held / 1e3:>12,.1f}")
    print(f"  memory MB at N (mix)   {total / 1e6:>12,.1f}")


if __name__ == "__main__":
    main()
