"""A bounds-checked little-endian cursor and the Date Time (0x2A08) field.

Every multi-byte field of the GATT health profiles is little-endian (Core Specification v5.x,
Vol 3, Part G, 3.3.3.5 and the GATT Specification Supplement, 'Field formats'). A read past the
end raises ``TruncatedPayload`` naming the field, never an ``IndexError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from device_drivers.ble.errors import TruncatedPayload
from device_drivers.ble.mder import MderNumber, float_from_raw, sfloat_from_raw

__all__ = ["DATE_TIME_SIZE", "DateTimeValue", "Reader", "date_time_from_bytes"]

DATE_TIME_SIZE = 7


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    """A decoded Date Time: ``when`` is None when ``flag`` says why ('time_unknown'...)."""

    when: datetime | None
    flag: str | None = None


def date_time_from_bytes(raw: bytes) -> DateTimeValue:
    """Decode 7 bytes of Date Time (GSS 3.70, 0x2A08): year u16, month, day, h, min, s.

    Year, month or day 0 mean "not known" (GSS 3.70): such a value is no time at all. Fields
    out of range (month 13, 30 February) give ``time_invalid`` rather than an exception, so a
    bad clock never costs the reading that came with it.
    """
    year = int.from_bytes(raw[0:2], "little")
    month, day, hours, minutes, seconds = raw[2:7]
    if year == 0 or month == 0 or day == 0:
        return DateTimeValue(None, "time_unknown")
    if not 1582 <= year <= 9999:
        return DateTimeValue(None, "time_invalid")
    try:
        return DateTimeValue(datetime(year, month, day, hours, minutes, seconds))
    except ValueError:
        return DateTimeValue(None, "time_invalid")


class Reader:
    """Sequential reader over one characteristic value."""

    def __init__(self, data: bytes, characteristic: str) -> None:
        self.data = bytes(data)
        self.characteristic = characteristic
        self.offset = 0

    def take(self, size: int, field: str) -> bytes:
        """Return the next ``size`` bytes or raise ``TruncatedPayload`` naming ``field``."""
        end = self.offset + size
        if end > len(self.data):
            raise TruncatedPayload(characteristic=self.characteristic, field=field,
                                   needed=end, got=len(self.data))
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "little")

    def u8(self, field: str) -> int:
        return self.uint(1, field)

    def u16(self, field: str) -> int:
        return self.uint(2, field)

    def s16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little", signed=True)

    def sfloat(self, field: str) -> MderNumber:
        return sfloat_from_raw(self.u16(field))

    def float32(self, field: str) -> MderNumber:
        return float_from_raw(self.uint(4, field))

    def date_time(self, field: str) -> DateTimeValue:
        return date_time_from_bytes(self.take(DATE_TIME_SIZE, field))

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset
