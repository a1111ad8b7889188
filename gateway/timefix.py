"""Explicit trust in time: from the device's own clock to a UTC measurement time.

A device reports its own time (often naive local time, sometimes years off when its clock
was never set). The gateway knows its own clock (NTP) and, per device, the offset between the
two (device minus gateway, learned from the device's Date Time or configured) and the zone
the device shows. The result says which correction was applied and whether the device time
could be trusted at all; when it could not, the gateway's receive time stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import ConfigError

# A device clock before this year was never set (factory default is often 2000-01-01).
EARLIEST_PLAUSIBLE = datetime(2015, 1, 1, tzinfo=UTC)
# A measurement cannot be in the gateway's future by more than this (clock drift allowance).
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class TimeFix:
    measured_at: datetime  # UTC
    device_time: str | None  # as the device sent it
    clock_offset_s: float
    time_zone: str | None
    trusted: bool
    reason: str | None = None  # why the device time was not trusted


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r}") from exc


def correct(device_time: datetime | None, received_at: datetime, *, clock_offset_s: float = 0.0,
            tz: str = "UTC") -> TimeFix:
    """Turn a device time into a trusted UTC measurement time, or say why it cannot be."""
    if device_time is None:
        return TimeFix(received_at, None, 0.0, None, False, "device sent no time")
    shown = device_time.isoformat()
    local = device_time if device_time.tzinfo else device_time.replace(tzinfo=zone(tz))
    used_tz = None if device_time.tzinfo else tz
    measured = (local - timedelta(seconds=clock_offset_s)).astimezone(UTC)
    if measured < EARLIEST_PLAUSIBLE:
        return TimeFix(received_at, shown, clock_offset_s, used_tz, False,
                       "device clock not set")
    if measured > received_at + FUTURE_TOLERANCE:
        return TimeFix(received_at, shown, clock_offset_s, used_tz, False,
                       "device time is in the future")
    return TimeFix(measured, shown, clock_offset_s, used_tz, True)
