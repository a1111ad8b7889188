"""Daily summaries begin at the deployment's local midnight (the cloud's --day-zone), as
the patient page's daily bars do: 24-hour days in UTC, 23 or 25 hours on DST nights."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine import Engine, midnights
from alerting.settings import PatientSettings, RulesConfig
from tests.alerting.alerting_kit import T0, days, feed, minutes, raised, reading
from vigie.contract import Kind

PARIS = ZoneInfo("Europe/Paris")
ZONES = [ZoneInfo(z) for z in ("Europe/Paris", "Indian/Reunion", "America/Cayenne",
                               "Pacific/Noumea", "America/Santiago", "UTC")]
SECONDS = st.floats(min_value=1.6e9, max_value=1.9e9, allow_nan=False)


def _ts(year: int, month: int, day: int, hour: int, *, zone: ZoneInfo = PARIS) -> float:
    return datetime(year, month, day, hour, tzinfo=zone).timestamp()


def test_paris_days_around_both_clock_changes() -> None:
    got = midnights(_ts(2025, 3, 29, 12), _ts(2025, 4, 1, 12), PARIS)
    assert [datetime.fromtimestamp(m, UTC).isoformat() for m in got] == [
        "2025-03-29T23:00:00+00:00", "2025-03-30T22:00:00+00:00", "2025-03-31T22:00:00+00:00"]
    assert [b - a for a, b in pairwise(got)] == [23 * 3600, 24 * 3600]
    autumn = midnights(_ts(2025, 10, 25, 12), _ts(2025, 10, 27, 12), PARIS)
    assert [b - a for a, b in pairwise(autumn)] == [25 * 3600]


@settings(max_examples=500)
@given(SECONDS, st.floats(min_value=0, max_value=40 * 86400), st.sampled_from(ZONES))
def test_every_local_midnight_in_the_span_once(after: float, span: float,
                                              zone: ZoneInfo) -> None:
    until = after + span
    got = midnights(after, until, zone)
    assert all(after < m <= until for m in got)
    assert got == sorted(set(got))
    local = [datetime.fromtimestamp(m, zone) for m in got]
    # a midnight the clocks skip (Santiago's spring) gives the first instant of that day
    assert all(d.time() in (time(0), time(1)) for d in local)
    dates = [d.date() for d in local]
    first = datetime.fromtimestamp(after, zone).date() + timedelta(days=1)
    last = datetime.fromtimestamp(until, zone).date()
    expected = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert dates == expected


@given(SECONDS, st.floats(min_value=0, max_value=40 * 86400))
def test_utc_is_the_arithmetic_of_whole_days(after: float, span: float) -> None:
    assert midnights(after, after + span, UTC) == midnights(after, after + span,
                                                             ZoneInfo("UTC"))


def test_time_in_range_summary_at_paris_midnight() -> None:
    def value(i: int) -> float:
        return 60.0 if i % 100 < 3 else 130.0
    cgm = [reading(Kind.GLUCOSE, value(i), T0 + minutes(5 * i)) for i in range(15 * 288)]
    config = RulesConfig(default=PatientSettings.model_validate({"age": 80}))
    for zone, hour_utc in ((UTC, 0), (PARIS, 23)):  # March 2025: Paris is UTC+1
        tir = raised(feed(Engine(config, day_zone=zone), cgm), "dm.time_in_range")
        assert tir, zone
        assert all(s.time.astimezone(zone).time() == time(0) for s in tir)
        assert tir[0].time.astimezone(UTC).hour == hour_utc
        assert tir[0].time >= T0 + days(13)
