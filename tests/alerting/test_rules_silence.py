"""Silence rules: evaluated on the clock, cannot be disabled, N bounded."""

from __future__ import annotations

import pytest

from alerting.engine import Engine
from alerting.seam import Category, Severity
from alerting.settings import PatientSettings, Profile, RulesConfig, SettingsError
from tests.alerting.alerting_kit import T0, days, engine, minutes, raised, reading
from vigie.contract import Kind


def test_no_weight_fires_on_tick_at_n_days_and_clears_on_data() -> None:
    eng = engine(profile="heart_failure")
    eng.evaluate(reading(Kind.WEIGHT, 80, T0))
    assert not raised(eng.tick(T0 + days(3) - minutes(1)), "silence.weight")
    hits = raised(eng.tick(T0 + days(3)), "silence.weight")
    assert hits and hits[0].category is Category.ADHERENCE
    assert eng.tick(T0 + days(4)) == []  # raised once, not on every tick
    back = eng.evaluate(reading(Kind.WEIGHT, 80, T0 + days(4)))
    assert [(s.rule, s.clear) for s in back] == [("silence.weight", True)]


def test_declared_profile_without_any_data_is_silent_too() -> None:
    eng = Engine(RulesConfig(patients={"p-1": PatientSettings(
        profile=(Profile.HEART_FAILURE, Profile.DIABETES))}))
    eng.evaluate(reading(Kind.BP_SYSTOLIC, 120, T0))
    rules = {s.rule for s in eng.tick(T0 + days(3))}
    assert {"silence.weight", "silence.glucose"} <= rules


def test_undeclared_kind_is_not_expected() -> None:
    eng = engine(profile="diabetes")
    eng.evaluate(reading(Kind.GLUCOSE, 120, T0))
    assert not raised(eng.tick(T0 + days(5)), "silence.weight")


def test_silence_cannot_be_disabled() -> None:
    with pytest.raises(SettingsError, match="cannot be disabled"):
        Engine(RulesConfig(disabled=("silence.weight",)))
    with pytest.raises(SettingsError, match="cannot be disabled"):
        engine(disabled=["silence.glucose"])


@pytest.mark.parametrize("n", [0.5, 8.0])
def test_silence_n_bounded(n: float) -> None:
    with pytest.raises(SettingsError):
        engine(thresholds={"silence.weight": {"days": n}})


def test_silence_n_overridable() -> None:
    eng = engine(profile="heart_failure", thresholds={"silence.weight": {"days": 1}})
    eng.evaluate(reading(Kind.WEIGHT, 80, T0))
    assert raised(eng.tick(T0 + days(1)), "silence.weight")


def test_cgm_device_silent_after_30_minutes() -> None:
    eng = engine(profile="diabetes")
    for i in range(12):
        eng.evaluate(reading(Kind.GLUCOSE, 120, T0 + minutes(5 * i)))
    last = T0 + minutes(55)
    assert not raised(eng.tick(last + minutes(29)), "silence.device")
    hits = raised(eng.tick(last + minutes(30)), "silence.device")
    assert hits and hits[0].severity is Severity.WARNING
    assert hits[0].category is Category.TECHNICAL


def test_gateway_silence_inhibits_device_silence() -> None:
    eng = engine(profile="diabetes")
    for i in range(12):
        eng.evaluate(reading(Kind.GLUCOSE, 120, T0 + minutes(5 * i)))
    eng.heartbeat("gw-1", T0 + minutes(55))
    signals = eng.tick(T0 + minutes(55) + days(0.25))
    rules = {s.rule for s in signals}
    assert "silence.gateway" in rules and "silence.device" not in rules


def test_declared_profile_decides_what_is_expected() -> None:
    eng = engine(profile="diabetes")
    eng.evaluate(reading(Kind.WEIGHT, 80, T0))  # an occasional weighing, not expected daily
    assert not raised(eng.tick(T0 + days(5)), "silence.weight")
    undeclared = engine()
    undeclared.evaluate(reading(Kind.WEIGHT, 80, T0))
    assert raised(undeclared.tick(T0 + days(5)), "silence.weight")
