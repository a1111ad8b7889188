"""The synthetic cohort: deterministic by seed, plausible, with ground truth beside it."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import pstdev

from firmware_sim.cohort import CohortOptions, make_cohort, patient, write_cohort

SMALL = CohortOptions(patients=12, days=60, seed=3, cgm_fraction=0.5)


def test_same_seed_same_cohort() -> None:
    a, b = make_cohort(SMALL), make_cohort(SMALL)
    assert a.readings == b.readings and a.events == b.events and a.patients == b.patients


def test_other_seed_other_cohort() -> None:
    other = CohortOptions(patients=12, days=60, seed=4, cgm_fraction=0.5)
    assert make_cohort(other).readings != make_cohort(SMALL).readings


def test_patient_independent_of_cohort_size() -> None:
    bigger = CohortOptions(patients=50, days=60, seed=3, cgm_fraction=0.5)
    assert patient(bigger, 7).readings == patient(SMALL, 7).readings


def test_plausible_values_and_ground_truth() -> None:
    cohort = make_cohort(CohortOptions(patients=30, days=150, seed=9, cgm_fraction=0.2))
    kinds = {e.kind for e in cohort.events}
    assert {"decompensation", "hypoglycaemia"} <= kinds
    for event in cohort.events:
        assert event.onset <= event.time <= event.end
    weights = [r for r in cohort.readings if r.kind == "weight"]
    assert all(30 < r.value < 130 for r in weights)
    glucose = [r.value for r in cohort.readings if r.kind == "glucose"]
    assert all(20 <= g <= 600 for g in glucose)
    first = cohort.patients[0].id if cohort.patients[0].profile == "heart_failure" else None
    if first:
        series = [r.value for r in weights if r.patient == first][:30]
        assert 0.3 < pstdev(series) < 2.0  # day-to-day noise in the 0.5-1 kg range
    times = [r.time for r in cohort.readings]
    assert times == sorted(times)


def test_write_cohort_is_replayable(tmp_path: Path) -> None:
    paths = write_cohort(tmp_path, SMALL)
    lines = paths["readings.jsonl"].read_text().splitlines()
    first = json.loads(lines[0])
    assert {"patient", "kind", "value", "unit", "time"} <= set(first)
    assert json.loads(paths["events.jsonl"].read_text().splitlines()[0])["kind"]
    rules = json.loads(paths["rules.json"].read_text())
    assert rules["patients"]
