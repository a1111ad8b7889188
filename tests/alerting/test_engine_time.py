"""Measurement time, not arrival time: late readings, stale data, out-of-order arrival,
redelivery, warm-up, determinism."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine import Engine
from alerting.seam import Evaluator, Severity
from alerting.settings import WarmUpError
from tests.alerting.alerting_kit import T0, days, engine, feed, minutes, raised, reading, weights
from vigie.contract import Kind, Reading


def test_engine_is_an_evaluator() -> None:
    evaluator: Evaluator = Engine()
    assert evaluator.evaluate(reading(Kind.WEIGHT, 80, T0)) == []


def test_redelivery_is_ignored() -> None:
    eng = engine()
    r = reading(Kind.GLUCOSE, 50, T0)
    assert raised(eng.evaluate(r), "dm.hypoglycaemia")
    assert eng.evaluate(r) == []


def test_late_weight_raises_late_warning_not_now() -> None:
    eng = engine()
    feed(eng, weights([80.0, 80.0, 80.0]))
    late = reading(Kind.WEIGHT, 83.0, T0 + days(3), received=T0 + days(6))
    hits = raised(eng.evaluate(late), "hf.weight_gain_3d")
    assert hits and hits[0].late and hits[0].time == T0 + days(3)


def test_engine_clock_makes_an_outbox_drain_late() -> None:
    eng = engine()
    feed(eng, weights([80.0, 80.0, 80.0]))
    eng.tick(T0 + days(6))  # the cloud's clock: three days later
    hits = raised(eng.evaluate(reading(Kind.WEIGHT, 83.0, T0 + days(3))), "hf.weight_gain_3d")
    assert hits and hits[0].late


def test_late_urgent_is_capped_and_stale_level_is_silent() -> None:
    eng = engine()
    late = reading(Kind.GLUCOSE, 40, T0, received=T0 + minutes(30))
    hits = raised(eng.evaluate(late), "dm.hypoglycaemia")
    assert hits and hits[0].late and hits[0].severity is Severity.WARNING
    old = reading(Kind.GLUCOSE, 40, T0 - days(3), received=T0 + minutes(30))
    assert raised(eng.evaluate(old), "dm.hypoglycaemia") == []


def test_late_reading_fills_a_window_in_the_past() -> None:
    eng = engine()
    feed(eng, weights([None, 80.0, 80.0, 83.0]))  # day 3 compared with day 0: missing
    assert not [k for k in eng.findings("p-1") if k[0] == "hf.weight_gain_3d"]
    signals = eng.evaluate(reading(Kind.WEIGHT, 80.0, T0, received=T0 + days(3)))
    hits = raised(signals, "hf.weight_gain_3d")
    assert hits and hits[0].time == T0 + days(3)


def _mixed_stream(seed: int) -> list[Reading]:
    rng = random.Random(seed)
    out = []
    w = 80.0
    for d in range(40):
        w += rng.gauss(0.15 if d > 30 else 0.0, 0.6)
        out.append(reading(Kind.WEIGHT, round(w, 1), T0 + days(d) + minutes(rng.randint(0, 90))))
        if d % 3 == 0:
            out.append(reading(Kind.BP_SYSTOLIC, rng.choice([75, 120, 175]), T0 + days(d)))
    g = 120.0
    start = T0 + days(20)
    for i in range(60):
        g = max(40.0, min(400.0, g + rng.gauss(0, 12)))
        out.append(reading(Kind.GLUCOSE, round(g), start + minutes(5 * i)))
    return out


def _findings(stream: list[Reading]) -> dict[tuple[str, datetime, str], object]:
    eng = Engine()
    feed(eng, stream)
    return dict(eng.findings("p-1"))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 3), order=st.randoms(use_true_random=False))
def test_out_of_order_gives_same_window_results(seed: int, order: random.Random) -> None:
    stream = _mixed_stream(seed)
    shuffled = list(stream)
    order.shuffle(shuffled)
    in_order = _findings(stream)
    assert in_order  # the stream does raise things
    assert _findings(shuffled) == in_order


@settings(max_examples=15, deadline=None)
@given(order=st.randoms(use_true_random=False), dup=st.lists(st.integers(0, 120), max_size=20))
def test_redelivery_in_any_order_changes_nothing(order: random.Random, dup: list[int]) -> None:
    stream = _mixed_stream(1)
    noisy = stream + [stream[i % len(stream)] for i in dup]
    order.shuffle(noisy)
    assert _findings(noisy) == _findings(stream)


def test_deterministic_signals() -> None:
    def run() -> list[object]:
        eng = Engine()
        out: list[object] = []
        for r in _mixed_stream(2):
            out += eng.evaluate(r)
        out += eng.tick(T0 + days(60))
        return out
    assert run() == run()


def test_warm_up_loader_called_once_per_patient_and_kind() -> None:
    calls: list[tuple[str, Kind, datetime, datetime]] = []
    history = weights([80.0] * 28)

    def loader(pid: str, kind: Kind, start: datetime, end: datetime) -> list[Reading]:
        calls.append((pid, kind, start, end))
        return [r for r in history if kind is r.kind and start <= r.measured_at <= end]

    eng = Engine(history_loader=loader)
    first = eng.evaluate(reading(Kind.WEIGHT, 82.5, T0 + days(28)))
    assert raised(first, "hf.weight_baseline")  # the baseline came from the loader
    eng.evaluate(reading(Kind.WEIGHT, 82.5, T0 + days(29)))
    assert len({(c[0], c[1]) for c in calls}) == len(calls)
    assert all(c[0] == "p-1" for c in calls)
    weight_call = next(c for c in calls if c[1] is Kind.WEIGHT)
    assert weight_call[3] == T0 + days(28) and weight_call[2] <= T0 - days(150)
    # history is not re-alerted: a loaded reading delivered again is evaluated once, as a
    # late reading, and a steady weight says nothing
    assert eng.evaluate(history[5]) == []
    assert eng.evaluate(history[5]) == []


def test_a_stored_low_delivered_after_later_readings_still_alerts() -> None:
    """A shard worker killed between its InfluxDB write and its alert transaction leaves a
    low stored but never evaluated. Its redelivery can come after later readings of the
    patient: the new engine's warm-up then meets the low as history. It must still page, once,
    and the later readings' findings must not be signalled twice."""
    low = reading(Kind.GLUCOSE, 45, T0)
    later = [reading(Kind.GLUCOSE, 100 + i, T0 + minutes(5 * (i + 1))) for i in range(3)]
    stored = [low, *later]

    def loader(pid: str, kind: Kind, start: datetime, end: datetime) -> list[Reading]:
        return [r for r in stored if kind is r.kind and start <= r.measured_at < end]

    eng = Engine(history_loader=loader)
    first = eng.evaluate(later[-1])  # met first: the warm-up loads the low and later[0:2]
    assert not raised(first, "dm.hypoglycaemia")
    redelivered = [s for r in stored for s in eng.evaluate(r)]
    lows = raised(redelivered, "dm.hypoglycaemia")
    assert [(s.severity, s.reading_id) for s in lows] == [(Severity.URGENT, low.id)]
    assert all(eng.evaluate(r) == [] for r in stored), "evaluated once"
    # the same findings as when the low came in order
    in_order = Engine()
    for r in stored:
        in_order.evaluate(r)
    assert eng.findings("p-1") == in_order.findings("p-1")


def test_warm_up_failure_is_retryable() -> None:
    attempts = []

    def loader(pid: str, kind: Kind, start: datetime, end: datetime) -> list[Reading]:
        attempts.append(kind)
        if len(attempts) == 1:
            raise ConnectionError("influx down")
        return []

    eng = Engine(history_loader=loader)
    r = reading(Kind.GLUCOSE, 50, T0)
    try:
        eng.evaluate(r)
    except WarmUpError:
        pass
    else:
        raise AssertionError("expected WarmUpError")
    assert raised(eng.evaluate(r), "dm.hypoglycaemia")


def test_reading_without_patient_or_in_wrong_unit_is_ignored() -> None:
    eng = Engine()
    anon = reading(Kind.GLUCOSE, 40, T0)
    assert eng.evaluate(replace(anon, patient_id=None)) == []
    assert eng.evaluate(replace(anon, unit="mmol/L", id="x")) == []


def test_a_reading_measured_after_its_receipt_cannot_silence_the_patient() -> None:
    """One glucose dated 2200 (a device clock gone wrong) would become the patient's latest
    point and prune every real reading before it: the engine does not take it in."""
    eng = engine()
    future = reading(Kind.GLUCOSE, 120, datetime(2200, 1, 1, tzinfo=UTC), received=T0)
    assert eng.evaluate(future) == []
    eng.tick(T0 + minutes(1))  # the cloud ticks every 10 s; a tick prunes old points
    low = raised(eng.evaluate(reading(Kind.GLUCOSE, 35, T0 + minutes(5))), "dm.hypoglycaemia")
    assert [s.severity for s in low] == [Severity.URGENT]
