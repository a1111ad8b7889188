"""Heart-failure weight rules at their boundaries (alert-rules.md, "Heart failure: weight")."""

from __future__ import annotations

import pytest

from alerting.seam import Severity
from tests.alerting.alerting_kit import T0, days, engine, feed, raised, reading, weights
from vigie.contract import Kind


@pytest.mark.parametrize(("gain", "fires"), [(1.35, False), (1.36, True), (1.5, True)])
def test_gain_1d_boundary(gain: float, fires: bool) -> None:
    signals = feed(engine(profile="heart_failure"), weights([80.0, 80.0 + gain]))
    hits = raised(signals, "hf.weight_gain_1d")
    assert bool(hits) is fires
    if fires:
        assert hits[0].severity is Severity.INFO


@pytest.mark.parametrize(("gain", "fires"), [(1.99, False), (2.0, True), (2.5, True)])
def test_gain_3d_boundary(gain: float, fires: bool) -> None:
    signals = feed(engine(), weights([80.0, 80.0, 80.0, 80.0 + gain]))
    hits = raised(signals, "hf.weight_gain_3d")
    assert bool(hits) is fires
    if fires:
        assert hits[0].severity is Severity.WARNING
        assert hits[0].time == T0 + days(3)


def test_gain_3d_needs_the_weight_of_three_days_earlier() -> None:
    signals = feed(engine(), weights([80.0, None, None, 83.0]))
    assert not raised(signals, "hf.weight_gain_1d")
    assert raised(signals, "hf.weight_gain_3d")
    assert not raised(feed(engine(), weights([80.0, None, 81.0, None, 83.0])),
                      "hf.weight_gain_3d")


def test_override_moves_threshold() -> None:
    eng = engine(thresholds={"hf.weight_gain_3d": {"kg": 3.0}})
    assert not raised(feed(eng, weights([80.0, 80.0, 80.0, 82.5])), "hf.weight_gain_3d")


@pytest.mark.parametrize(("gain", "fires"), [(1.99, False), (2.0, True)])
def test_baseline_boundary(gain: float, fires: bool) -> None:
    # 28 days alternating +-0.3 around 80 kg (mean exactly 80), then a jump.
    series = [80.3 if i % 2 else 79.7 for i in range(28)] + [80.0 + gain]
    signals = feed(engine(), weights(series))
    assert bool(raised(signals, "hf.weight_baseline")) is fires


def test_baseline_needs_warm_up() -> None:
    signals = feed(engine(), weights([80.0] * 5 + [83.0]))
    assert not raised(signals, "hf.weight_baseline")


def test_trend_catches_slow_gain_the_classic_rule_misses() -> None:
    flat = [80.3 if i % 2 else 79.7 for i in range(30)]
    slow = [80.0 + 0.15 * i for i in range(1, 15)]  # 0.45 kg per 3 days
    signals = feed(engine(), weights(flat + slow))
    assert not raised(signals, "hf.weight_gain_3d")
    trend = raised(signals, "hf.weight_trend")
    assert trend and trend[0].time < T0 + days(30 + 14)


def test_trend_quiet_on_noise_only() -> None:
    flat = [80.0 + (0.6 if i % 3 == 0 else -0.3) for i in range(60)]
    assert not raised(feed(engine(), weights(flat)), "hf.weight_trend")


def _loss_series(total_pct: float) -> list[float | None]:
    before = [70.0] * 10
    after = [70.0 * (1 - total_pct / 100)] * 30
    return [*before, *after]


@pytest.mark.parametrize(("pct", "severity"), [(4.9, None), (5.1, Severity.INFO),
                                               (10.1, Severity.WARNING)])
def test_undernutrition_one_month(pct: float, severity: Severity | None) -> None:
    signals = feed(engine(age=82, resident=True), weights(_loss_series(pct)))
    hits = raised(signals, "nutrition.weight_loss")
    assert (hits[-1].severity if hits else None) is severity


def test_undernutrition_only_for_residents_from_70() -> None:
    loss = weights(_loss_series(12))
    assert raised(feed(engine(age=70, resident=True), loss), "nutrition.weight_loss")
    assert not raised(feed(engine(age=69, resident=True), loss), "nutrition.weight_loss")
    assert not raised(feed(engine(resident=True), loss), "nutrition.weight_loss")
    # at home, the same loss is mostly a diuretic's work on a heart-failure patient
    assert not raised(feed(engine(age=82), loss), "nutrition.weight_loss")


def test_weight_rules_do_not_apply_to_diabetes_only_patients() -> None:
    signals = feed(engine(profile="diabetes"), weights([80.0, 80.0, 80.0, 85.0]))
    assert not [s for s in signals if s.rule.startswith("hf.")]


def test_special_value_is_not_a_weight() -> None:
    eng = engine()
    feed(eng, weights([80.0, 80.0, 80.0]))
    assert not eng.evaluate(reading(Kind.WEIGHT, None, T0 + days(3)))
