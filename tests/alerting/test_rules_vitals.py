"""Vital-sign bounds (BEAT-HF urgent, TELBIL warning) and NT-proBNP rise."""

from __future__ import annotations

import pytest

from alerting.seam import Severity
from tests.alerting.alerting_kit import T0, days, engine, feed, raised, reading
from vigie.contract import Kind


def _severity(kind: Kind, value: float, **settings: object) -> Severity | None:
    hits = [s for s in feed(engine(**settings), [reading(kind, value, T0)]) if not s.clear]
    return hits[0].severity if hits else None


@pytest.mark.parametrize(("value", "symptoms", "expected"), [
    (120, False, None), (100, False, None), (99, False, Severity.WARNING),
    (80, False, Severity.WARNING), (79, False, Severity.URGENT),
    (89, True, Severity.URGENT), (90, True, Severity.WARNING),
    (160, False, None), (161, False, Severity.WARNING), (170, False, Severity.WARNING),
    (171, False, Severity.URGENT), (161, True, Severity.URGENT),
])
def test_systolic(value: float, symptoms: bool, expected: Severity | None) -> None:
    assert _severity(Kind.BP_SYSTOLIC, value, symptoms=symptoms) is expected


@pytest.mark.parametrize(("value", "symptoms", "expected"), [
    (50, False, None), (49, False, Severity.WARNING), (39, False, Severity.URGENT),
    (49, True, Severity.URGENT), (100, False, None), (101, False, Severity.WARNING),
    (111, False, Severity.URGENT), (101, True, Severity.URGENT),
])
def test_heart_rate(value: float, symptoms: bool, expected: Severity | None) -> None:
    assert _severity(Kind.HEART_RATE, value, symptoms=symptoms) is expected


@pytest.mark.parametrize(("value", "expected"), [(59, Severity.WARNING), (60, None),
                                                 (95, None), (96, Severity.WARNING)])
def test_diastolic(value: float, expected: Severity | None) -> None:
    assert _severity(Kind.BP_DIASTOLIC, value) is expected


@pytest.mark.parametrize(("value", "lung", "expected"), [
    (95, False, None), (94, False, Severity.WARNING), (90, True, None),
    (87, True, Severity.WARNING)])
def test_spo2(value: float, lung: bool, expected: Severity | None) -> None:
    assert _severity(Kind.SPO2, value, chronic_lung_disease=lung) is expected


def test_vital_hysteresis_clears_only_inside_margin() -> None:
    eng = engine()
    assert raised(eng.evaluate(reading(Kind.BP_SYSTOLIC, 75, T0)), "hf.bp_systolic")
    assert eng.evaluate(reading(Kind.BP_SYSTOLIC, 102, T0 + days(1))) == []
    cleared = eng.evaluate(reading(Kind.BP_SYSTOLIC, 110, T0 + days(2)))
    assert [s.clear for s in cleared] == [True]


def test_stale_vital_never_fires() -> None:
    eng = engine()
    old = reading(Kind.BP_SYSTOLIC, 70, T0, received=T0 + days(1))
    assert eng.evaluate(old) == []


@pytest.mark.parametrize(("before", "after", "fires"), [
    (1000, 1290, False), (1000, 1300, True), (200, 290, False), (200, 300, True)])
def test_nt_probnp_rise(before: float, after: float, fires: bool) -> None:
    signals = feed(engine(), [reading(Kind.NT_PROBNP, before, T0),
                              reading(Kind.NT_PROBNP, after, T0 + days(30))])
    assert bool(raised(signals, "hf.nt_probnp_rise")) is fires


def test_nt_probnp_previous_too_old() -> None:
    signals = feed(engine(), [reading(Kind.NT_PROBNP, 500, T0),
                              reading(Kind.NT_PROBNP, 2000, T0 + days(200))])
    assert not raised(signals, "hf.nt_probnp_rise")
