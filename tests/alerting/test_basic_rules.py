from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerting.basic import BasicRules
from alerting.seam import Severity
from vigie.contract import Kind, Reading

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
_n = 0


def reading(kind: Kind, value: float, at: datetime = NOW, patient: str | None = "p1") -> Reading:
    global _n
    _n += 1
    return Reading(id=f"{_n:032x}", gateway_id="gw", device_id="d", patient_id=patient,
                   stream_seq=_n, kind=kind, value=value,
                   unit="mg/dL" if kind is Kind.GLUCOSE else "kg", measured_at=at,
                   received_at=at, device_time=None, clock_offset_s=0, time_zone=None,
                   time_trusted=True)


def raised(rules: BasicRules, r: Reading) -> list[tuple[str, str, bool]]:
    return [(s.rule, str(s.severity), s.late) for s in rules.evaluate(r) if not s.clear]


@pytest.mark.parametrize(("mgdl", "expected"), [
    (53.9, [("glucose_low_l2", "urgent", False)]),
    (54.0, [("glucose_low_l1", "warning", False)]),
    (69.9, [("glucose_low_l1", "warning", False)]),
    (70.0, []), (250.0, []),
    (250.1, [("glucose_high_l2", "warning", False)]),
])
def test_glucose_thresholds(mgdl: float, expected: list[tuple[str, str, bool]]) -> None:
    assert raised(BasicRules(clock=lambda: NOW), reading(Kind.GLUCOSE, mgdl)) == expected


def test_in_range_glucose_clears_all_glucose_rules() -> None:
    sigs = BasicRules(clock=lambda: NOW).evaluate(reading(Kind.GLUCOSE, 120))
    assert sorted(s.rule for s in sigs if s.clear) == [
        "glucose_high_l2", "glucose_low_l1", "glucose_low_l2"]


def test_old_low_is_late_and_not_urgent() -> None:
    rules = BasicRules(clock=lambda: NOW)
    r = reading(Kind.GLUCOSE, 40, at=NOW - timedelta(days=3))
    assert raised(rules, r) == [("glucose_low_l2", "warning", True)]


def test_redelivery_is_ignored_and_unattributed_is_not_evaluated() -> None:
    rules = BasicRules(clock=lambda: NOW)
    r = reading(Kind.GLUCOSE, 40)
    assert rules.evaluate(r) and rules.evaluate(r) == []
    assert rules.evaluate(reading(Kind.GLUCOSE, 40, patient=None)) == []


def test_weight_gain_of_2kg_in_3_days_with_hysteresis() -> None:
    rules = BasicRules(clock=lambda: NOW)
    day = timedelta(days=1)
    assert raised(rules, reading(Kind.WEIGHT, 80.0, NOW - 5 * day)) == []
    assert raised(rules, reading(Kind.WEIGHT, 80.5, NOW - 3 * day)) == []
    assert raised(rules, reading(Kind.WEIGHT, 81.9, NOW - 2 * day)) == []  # +1.4
    assert raised(rules, reading(Kind.WEIGHT, 82.5, NOW - day)) == [
        ("weight_gain_3d", "warning", True)]  # +2.0 over 80.5
    mid = rules.evaluate(reading(Kind.WEIGHT, 82.2, NOW))  # +1.7 over 80.5 (80.0 is 5 days old)
    assert mid == []  # between clear (1.5) and raise (2.0): nothing changes
    cleared = rules.evaluate(reading(Kind.WEIGHT, 81.0, NOW + timedelta(hours=1)))
    assert [(s.rule, s.clear) for s in cleared] == [("weight_gain_3d", True)]


def test_weight_state_is_warmed_from_history() -> None:
    calls = []

    def history(patient: str, kind: str, start: datetime, end: datetime
                ) -> list[tuple[datetime, float]]:
        calls.append((patient, kind))
        return [(NOW - timedelta(days=2), 70.0)]

    rules = BasicRules(history=history, clock=lambda: NOW)
    assert raised(rules, reading(Kind.WEIGHT, 72.0)) == [("weight_gain_3d", "warning", False)]
    rules.evaluate(reading(Kind.WEIGHT, 72.1))
    assert calls == [("p1", "weight")]
    assert Severity.URGENT == "urgent"


def test_untrusted_time_is_never_urgent_and_control_solution_is_ignored() -> None:
    from dataclasses import replace

    rules = BasicRules(clock=lambda: NOW)
    r = replace(reading(Kind.GLUCOSE, 40), time_trusted=False)
    assert raised(rules, r) == [("glucose_low_l2", "warning", False)]
    control = replace(reading(Kind.GLUCOSE, 40), flags=("non_patient_data",))
    assert rules.evaluate(control) == []
