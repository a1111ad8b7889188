"""The tick visits only what is due (issue 12), and says exactly what a tick visiting every
patient would say.

The reference below is the engine as it was before: every tick runs every patient's silence
rules and the silent gateways are recomputed from scratch at each use. Random scenarios of
readings (CGM streams, sparse meters, late uploads, device moves), heartbeats, settings edits
and ticks must give the same signals, in the same order, from both.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine import Engine
from alerting.seam import AlertSignal
from tests.alerting.alerting_kit import T0, days, engine, minutes, raised, reading
from vigie.contract import Kind


class EveryPatient(Engine):
    """Reference: visits every patient at every tick, silent gateways never cached."""

    def _fresh_silent(self) -> None:
        if self._clock is not None:
            self._silent = frozenset(
                g for g in self._heartbeat_gateways
                if self._clock - self._gateway_seen[g] >= self._gateway_limit)

    def _heard(self, gateway_id: str, at: float) -> None:
        super()._heard(gateway_id, at)
        self._fresh_silent()

    def tick(self, now: datetime) -> list[AlertSignal]:
        self._clock = now.timestamp() if self._clock is None else max(self._clock,
                                                                      now.timestamp())
        self._fresh_silent()
        self._touched |= set(self._patients)
        return super().tick(now)


PATIENTS = ("p-1", "p-2", "p-3")
PROFILES: dict[str, dict[str, Any]] = {"p-1": {"profile": "diabetes"},
                                       "p-2": {"profile": "heart_failure"}, "p-3": {}}
DEVICES = {"cgm": Kind.GLUCOSE, "meter": Kind.GLUCOSE, "scale": Kind.WEIGHT}

step = st.one_of(
    st.tuples(st.just("wait"), st.integers(1, 36 * 60)),  # minutes, then a tick
    st.tuples(st.just("cgm"), st.integers(1, 14), st.sampled_from(PATIENTS),
              st.sampled_from(("gw-a", "gw-b"))),  # a run of 5-minute values
    st.tuples(st.just("reading"), st.sampled_from(PATIENTS), st.sampled_from(("meter", "scale")),
              st.integers(0, 4 * 24 * 60), st.integers(0, 2 * 24 * 60),
              st.sampled_from(("gw-a", "gw-b"))),  # measured/received that long ago
    st.tuples(st.just("heartbeat"), st.sampled_from(("gw-a", "gw-b"))),
    st.tuples(st.just("settings"), st.sampled_from(PATIENTS),
              st.sampled_from(({"profile": "diabetes"}, {"profile": "heart_failure"}, {},
                               None))),
)


def _play(eng: Engine, steps: list[tuple[Any, ...]]) -> list[AlertSignal]:
    out: list[AlertSignal] = []
    now = T0
    for pid, s in PROFILES.items():
        eng.set_patient_settings(pid, s)
    for n, item in enumerate(steps):
        match item:
            case ("wait", m):
                now += minutes(m)
                out += eng.tick(now)
            case ("cgm", count, pid, gw):
                for i in range(count):
                    at = now + minutes(5 * i)
                    out += eng.evaluate(reading(Kind.GLUCOSE, 90 + 7 * i, at, pid=pid,
                                                device=f"{pid}-cgm", gateway=gw,
                                                rid=f"r{n}-{i}"))
                now += minutes(5 * count)
            case ("reading", pid, dev, lag, late, gw):
                measured = now - minutes(lag)
                received = max(measured, now - minutes(late))
                out += eng.evaluate(reading(DEVICES[dev], 110, measured, pid=pid,
                                            received=received, device=f"{pid}-{dev}",
                                            gateway=gw, rid=f"r{n}"))
            case ("heartbeat", gw):
                eng.heartbeat(gw, now)
            case ("settings", pid, s):
                eng.set_patient_settings(pid, s)
    out += eng.tick(now + days(8))
    return out


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, max_size=40))
def test_due_ticks_say_what_visiting_everyone_says(steps: list[tuple[Any, ...]]) -> None:
    assert _play(Engine(), steps) == _play(EveryPatient(), steps)


def _cgm(eng: Engine, pid: str, start: datetime, count: int = 12,
         gateway: str = "gw-1") -> datetime:
    for i in range(count):
        eng.evaluate(reading(Kind.GLUCOSE, 120, start + minutes(5 * i), pid=pid,
                             device=f"{pid}-cgm", gateway=gateway))
    return start + minutes(5 * (count - 1))


def test_idle_population_costs_no_visit() -> None:
    eng = engine(profile="diabetes")
    for i in range(300):
        eng.evaluate(reading(Kind.GLUCOSE, 120, T0, pid=f"p-{i}", device=f"m-{i}"))
    assert eng.due_count() == 300  # each met for the first time: looked at once
    eng.tick(T0 + minutes(1))
    assert eng.due_count() == 300  # now scheduled, at their silence times, not every tick
    assert eng.tick(T0 + minutes(2)) == []
    hits = raised(eng.tick(T0 + days(3)), "silence.glucose")
    assert len(hits) == 300


def test_a_scheduled_visit_finds_fresh_data_and_moves_on() -> None:
    eng = engine(profile="diabetes")
    last = _cgm(eng, "p-1", T0)
    eng.tick(last)
    more = _cgm(eng, "p-1", last + minutes(5))  # fresher data: the old due time stands
    assert not raised(eng.tick(last + minutes(31)), "silence.device")
    hits = raised(eng.tick(more + minutes(30)), "silence.device")
    assert hits and hits[0].time == more + minutes(30)


def test_a_meter_that_becomes_a_cgm_stream_is_watched_on_the_shorter_limit() -> None:
    eng = engine(profile="diabetes")
    eng.evaluate(reading(Kind.GLUCOSE, 120, T0, device="d"))
    eng.tick(T0)  # scheduled 7 days ahead, as a meter
    for i in range(1, 12):
        eng.evaluate(reading(Kind.GLUCOSE, 120, T0 + minutes(5 * i), device="d"))
    hits = raised(eng.tick(T0 + minutes(55 + 30)), "silence.device")
    assert hits and hits[0].severity.value == "warning"


def test_heartbeat_after_silence_clears_the_gateway_alert_at_the_next_tick() -> None:
    eng = engine(profile="diabetes")
    last = _cgm(eng, "p-1", T0)
    eng.heartbeat("gw-1", last)
    assert raised(eng.tick(last + timedelta(hours=6)), "silence.gateway")
    eng.heartbeat("gw-1", last + timedelta(hours=7))
    cleared = [s for s in eng.tick(last + timedelta(hours=7)) if s.clear]
    assert [s.rule for s in cleared] == ["silence.gateway"]


def test_settings_edit_is_looked_at_by_the_next_tick() -> None:
    eng = Engine()
    eng.evaluate(reading(Kind.WEIGHT, 80, T0, pid="p-9", device="s"))
    eng.tick(T0)
    assert not raised(eng.tick(T0 + days(4)), "silence.glucose")
    eng.set_patient_settings("p-9", {"profile": ["heart_failure", "diabetes"]})
    assert raised(eng.tick(T0 + days(4)), "silence.glucose")


def test_a_gateway_heard_again_turns_silent_counted_from_its_latest_news() -> None:
    eng = engine(profile="diabetes")
    eng.heartbeat("gw-1", T0)
    eng.evaluate(reading(Kind.GLUCOSE, 120, T0 + timedelta(hours=1)))
    assert not raised(eng.tick(T0 + timedelta(hours=6)), "silence.gateway")
    assert raised(eng.tick(T0 + timedelta(hours=7)), "silence.gateway")
