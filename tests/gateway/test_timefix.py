from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import ConfigError
from gateway.timefix import correct

RECEIVED = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_naive_local_time_with_clock_offset() -> None:
    # device shows Paris summer time (UTC+2) and runs 90 s fast
    fix = correct(datetime(2026, 7, 1, 11, 31, 30), RECEIVED, clock_offset_s=90,
                  tz="Europe/Paris")
    assert fix.trusted and fix.measured_at == datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
    assert (fix.device_time, fix.clock_offset_s, fix.time_zone) == (
        "2026-07-01T11:31:30", 90, "Europe/Paris")


def test_aware_device_time_ignores_zone_setting() -> None:
    fix = correct(datetime(2026, 7, 1, 9, 0, tzinfo=UTC), RECEIVED, tz="Asia/Tokyo")
    assert fix.trusted and fix.measured_at.hour == 9 and fix.time_zone is None


@pytest.mark.parametrize(("device_time", "reason"), [
    (None, "device sent no time"),
    (datetime(2000, 1, 1, 0, 5), "device clock not set"),
    (datetime(2026, 7, 1, 10, 30), "device time is in the future"),
])
def test_untrusted_time_falls_back_to_receive_time(device_time: datetime | None,
                                                   reason: str) -> None:
    fix = correct(device_time, RECEIVED)
    assert not fix.trusted and fix.reason == reason and fix.measured_at == RECEIVED


def test_small_drift_into_the_future_is_tolerated() -> None:
    assert correct(RECEIVED.replace(tzinfo=None) + timedelta(minutes=2), RECEIVED).trusted


def test_unknown_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        correct(datetime(2026, 1, 1), RECEIVED, tz="Mars/Olympus")


def test_backoff_is_jittered_and_capped() -> None:
    import random

    from vigie.backoff import Backoff

    b = Backoff(0.5, 30, random.Random(1))
    delays = [b.next() for _ in range(12)]
    assert all(0.25 <= d <= 30 for d in delays)
    assert len(set(delays)) == len(delays), "jitter: no two waits alike"
    assert max(delays[8:]) > 5, "grows towards the cap"
    b.reset()
    assert b.next() <= 0.5
