"""Diabetes rules at their boundaries (Battelino 2019, Nightscout, Dexcom)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

import pytest

from alerting.engine import Engine
from alerting.rules.diabetes import UrgentLowSoon, missed_targets, tir_metrics
from alerting.seam import AlertSignal, Severity
from tests.alerting.alerting_kit import T0, days, engine, feed, minutes, raised, reading
from vigie.contract import Kind, Reading


def _glucose(values: list[float], step_min: float = 5.0) -> list[Reading]:
    return [reading(Kind.GLUCOSE, v, T0 + minutes(i * step_min)) for i, v in enumerate(values)]


def _hypo(value: float) -> Severity | None:
    hits = raised(feed(engine(), [reading(Kind.GLUCOSE, value, T0)]), "dm.hypoglycaemia")
    return hits[0].severity if hits else None


@pytest.mark.parametrize(("value", "expected"), [
    (70, None), (69.9, Severity.WARNING), (54, Severity.WARNING), (53.9, Severity.URGENT)])
def test_hypo_levels(value: float, expected: Severity | None) -> None:
    assert _hypo(value) is expected


def test_physician_set_severe_threshold() -> None:
    eng = engine(thresholds={"dm.hypoglycaemia": {"l2": 60}})
    assert raised(eng.evaluate(reading(Kind.GLUCOSE, 59, T0)), "dm.hypoglycaemia")[0] \
        .severity is Severity.URGENT


def test_hypo_clears_with_hysteresis() -> None:
    eng = engine()
    eng.evaluate(reading(Kind.GLUCOSE, 60, T0))
    assert eng.evaluate(reading(Kind.GLUCOSE, 75, T0 + minutes(15))) == []
    assert [s.clear for s in eng.evaluate(reading(Kind.GLUCOSE, 85, T0 + minutes(30)))] \
        == [True]


@pytest.mark.parametrize(("value", "fires"), [(250, False), (250.1, True)])
def test_hyper_level2(value: float, fires: bool) -> None:
    hits = raised(feed(engine(), [reading(Kind.GLUCOSE, value, T0)]), "dm.hyperglycaemia")
    assert bool(hits) is fires


def test_stale_glucose_never_pages() -> None:
    old = reading(Kind.GLUCOSE, 40, T0, received=T0 + minutes(61))
    assert engine().evaluate(old) == []
    fresh = reading(Kind.GLUCOSE, 40, T0, received=T0 + minutes(59))
    assert raised(engine().evaluate(fresh), "dm.hypoglycaemia")


@pytest.mark.parametrize(("count", "fires"), [(24, False), (25, True)])
def test_sustained_hyper_needs_two_hours(count: int, fires: bool) -> None:
    signals = feed(engine(), _glucose([260.0] * count))  # 25 points = 120 minutes
    assert bool(raised(signals, "dm.hyper_sustained")) is fires


def test_sustained_hyper_broken_by_a_gap() -> None:
    readings = _glucose([260.0] * 10) + [reading(Kind.GLUCOSE, 260.0, T0 + minutes(80 + i * 5))
                                         for i in range(20)]
    assert not raised(feed(engine(), readings), "dm.hyper_sustained")


@pytest.mark.parametrize(("rate", "expected"), [
    (1.9, None), (2.0, Severity.INFO), (2.9, Severity.INFO), (3.0, Severity.WARNING)])
def test_fast_fall(rate: float, expected: Severity | None) -> None:
    values = [250.0 - rate * 5 * i for i in range(4)]
    hits = raised(feed(engine(), _glucose(values)), "dm.fast_fall")
    assert (hits[-1].severity if hits else None) is expected


def test_fast_fall_ignores_capillary_spacing() -> None:
    values = [250.0, 150.0, 60.0]
    assert not raised(feed(engine(), _glucose(values, step_min=240)), "dm.fast_fall")


def test_ar2_forecast_matches_nightscout_recurrence() -> None:
    rule = UrgentLowSoon()
    out = rule.forecast(100, 90, 2)
    y0, y1 = math.log(100 / 140), math.log(90 / 140)
    y2 = -0.723 * y0 + 1.716 * y1
    assert out[0] == pytest.approx(140 * math.exp(y2))
    assert out[1] == pytest.approx(140 * math.exp(-0.723 * y1 + 1.716 * y2))


def test_urgent_low_soon_boundary() -> None:
    rule = UrgentLowSoon()
    # find a falling pair whose 20-minute forecast is just above / below 55
    assert min(rule.forecast(100, 90, 4)) > 55
    falling = raised(feed(engine(), _glucose([100, 80])), "dm.urgent_low_soon")
    assert min(rule.forecast(100, 80, 4)) <= 55
    assert falling and falling[0].severity is Severity.URGENT
    assert not raised(feed(engine(), _glucose([100, 90])), "dm.urgent_low_soon")


def test_urgent_low_soon_needs_cgm_spacing() -> None:
    assert not raised(feed(engine(), _glucose([100, 80], step_min=15)), "dm.urgent_low_soon")


def test_tir_metrics_and_targets() -> None:
    values = [50.0] * 2 + [65.0] * 3 + [120.0] * 75 + [200.0] * 15 + [300.0] * 5
    m = tir_metrics(values)
    assert m["below_54"] == 2 and m["below_70"] == 5 and m["in_range"] == 75
    assert m["above_250"] == 5 and m["above_180"] == 20
    assert m["gmi"] == pytest.approx(3.31 + 0.02392 * sum(values) / len(values))
    adult = missed_targets(m, older=False)
    assert any(x.startswith("below_54") for x in adult)
    assert any(x.startswith("below_70") for x in adult)
    assert any(x.startswith("above_250") for x in adult)  # 5% is not "< 5%"
    assert not any(x.startswith("in_range") for x in adult)
    older = missed_targets(m, older=True)
    assert any(x.startswith("below_70") for x in older)


def _cgm_days(n_days: int, value_at: Callable[[int], float]) -> list[Reading]:
    return [reading(Kind.GLUCOSE, value_at(i), T0 + minutes(5 * i))
            for i in range(n_days * 288)]


def test_tir_summary_daily_with_sufficiency() -> None:
    # 15 days, 3% of readings at 60 mg/dL: misses "< 70 under 1%" (older), meets adults' 4%
    def value(i: int) -> float:
        return 60.0 if i % 100 < 3 else 130.0
    signals = feed(engine(age=80), _cgm_days(15, value))
    tir = raised(signals, "dm.time_in_range")
    assert tir and tir[0].severity is Severity.WARNING
    assert tir[0].time >= T0 + days(13)
    assert not raised(feed(engine(age=40), _cgm_days(15, value)), "dm.time_in_range")


def test_tir_needs_enough_data() -> None:
    def value(i: int) -> float:
        return 40.0
    sparse = [r for i, r in enumerate(_cgm_days(15, value)) if i % 4 == 0]  # 25% coverage
    assert not raised(feed(engine(), sparse), "dm.time_in_range")


def _tir(signals: list[AlertSignal]) -> list[tuple[object, ...]]:
    return [(s.time, s.severity, s.value, s.message, s.clear) for s in signals
            if s.rule == "dm.time_in_range"]


def _ticking(eng: Engine, stream: list[Reading]) -> list[AlertSignal]:
    """Feed with an hourly tick, as the cloud's clock would: older values get archived."""
    out: list[AlertSignal] = []
    next_tick = stream[0].measured_at
    for r in stream:
        while r.measured_at >= next_tick:
            out += eng.tick(next_tick)
            next_tick += timedelta(hours=1)
        out += eng.evaluate(r)
    return out


def _varied(i: int) -> float:
    return 48.0 if i % 97 == 0 else 65.0 if i % 31 == 0 else 120.0 + (i * 37) % 160


def test_tir_from_the_archive_equals_tir_from_samples() -> None:
    stream = _cgm_days(17, _varied)
    archived_eng = engine(age=40)
    archived = _ticking(archived_eng, stream)
    assert _tir(archived)  # the summary does fire on this stream
    assert _tir(archived) == _tir(feed(engine(age=40), stream))
    # the archive did its work: the samples kept are the last hours', not 14 days'
    samples, archived_values = archived_eng.held("p-1")[Kind.GLUCOSE]
    assert samples < 12 * 6 and archived_values > 14 * 288


def test_late_value_into_the_archive_is_counted_once() -> None:
    stream = _cgm_days(17, lambda i: 130.0)
    late = [reading(Kind.GLUCOSE, 40.0, T0 + days(5) + minutes(5 * i + 2),
                    received=T0 + days(17)) for i in range(150)]
    eng = engine(age=40)
    _ticking(eng, stream)
    assert eng.held("p-1")[Kind.GLUCOSE][1] > 14 * 288  # day 5 is in the archive
    assert _tir(feed(eng, late))  # the lows, late, change the summaries that cover them
    on_time = engine(age=40)
    _ticking(on_time, sorted(stream + late, key=lambda r: r.measured_at))

    def last_summary(e: Engine) -> object:
        return [f for (rule, _, _), f in e.findings("p-1").items()
                if rule == "dm.time_in_range"][-1]
    assert last_summary(eng) == last_summary(on_time)
    # redelivered, the late lows and the stream's own day 6: archived values keep no id,
    # but are known by time and value
    assert feed(eng, late + stream[6 * 288:7 * 288]) == []
    assert last_summary(eng) == last_summary(on_time)
