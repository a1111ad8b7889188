"""Per-patient settings edited while the engine runs; readings the engine must not trust."""

from __future__ import annotations

import pytest

from alerting.engine import Engine
from alerting.settings import SettingsError
from tests.alerting.alerting_kit import T0, minutes, raised, reading
from vigie.contract import Kind


def test_a_physician_threshold_applies_to_the_next_reading_of_that_patient_only() -> None:
    eng = Engine()
    assert raised(eng.evaluate(reading(Kind.GLUCOSE, 60, T0)), "dm.hypoglycaemia")[0] \
        .severity == "warning"
    eng.set_patient_settings("p-1", {"thresholds": {"dm.hypoglycaemia": {"l2": 65}}})
    later = raised(eng.evaluate(reading(Kind.GLUCOSE, 61, T0 + minutes(5))),
                   "dm.hypoglycaemia")
    assert [s.severity for s in later] == ["urgent"], "61 < the patient's own l2 of 65"
    other = raised(eng.evaluate(reading(Kind.GLUCOSE, 61, T0, pid="p-2")), "dm.hypoglycaemia")
    assert [s.severity for s in other] == ["warning"], "other patients keep the defaults"


def test_back_to_defaults_and_refusals() -> None:
    eng = Engine()
    eng.set_patient_settings("p-1", {"thresholds": {"dm.hypoglycaemia": {"l2": 65}}})
    eng.set_patient_settings("p-1", None)
    hit = raised(eng.evaluate(reading(Kind.GLUCOSE, 61, T0)), "dm.hypoglycaemia")
    assert [s.severity for s in hit] == ["warning"]
    with pytest.raises(SettingsError, match="cannot be disabled"):
        eng.set_patient_settings("p-1", {"disabled": ["silence.glucose"]})
    with pytest.raises(SettingsError):
        eng.set_patient_settings("p-1", {"thresholds": {"dm.hypoglycaemia": {"l2": 5}}})
    with pytest.raises(SettingsError):
        eng.set_patient_settings("p-1", {"no_such_field": 1})


def test_untrusted_time_never_pages_urgent_and_control_solution_is_ignored() -> None:
    from dataclasses import replace

    eng = Engine()
    unset_clock = replace(reading(Kind.GLUCOSE, 40, T0), time_trusted=False)
    assert [s.severity for s in raised(eng.evaluate(unset_clock), "dm.hypoglycaemia")] == [
        "warning"]
    control = replace(reading(Kind.GLUCOSE, 40, T0 + minutes(1), pid="p-2"),
                      flags=("non_patient_data",))
    assert Engine().evaluate(control) == []
    trusted = reading(Kind.GLUCOSE, 40, T0, pid="p-3")
    assert [s.severity for s in raised(Engine().evaluate(trusted), "dm.hypoglycaemia")] == [
        "urgent"]
