"""IEEE 11073-20601 medical number types SFLOAT (16-bit) and FLOAT (32-bit).

Both are ``mantissa * 10**exponent`` with two's complement fields, little-endian on the wire
(ISO/IEEE 11073-20601, annex F.7 FLOAT-Type and F.8 SFLOAT-Type):

- SFLOAT: exponent bits 15-12 (4-bit), mantissa bits 11-0 (12-bit).
- FLOAT: exponent byte 3 (int8), mantissa bytes 0-2 (int24).

Special values are whole raw words with a zero exponent (same annex): NaN, NRes ("not at this
resolution"), +INF, -INF and one reserved word. They decode to no number and a flag string.
Values are computed in ``Decimal`` so 0xF0BD is exactly 18.9, not 18.900000000000002.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from device_drivers.ble.errors import TruncatedPayload

__all__ = ["MderNumber", "decode_float", "decode_sfloat", "float_from_raw", "sfloat_from_raw"]

_SFLOAT_SPECIAL: Final = {0x07FE: "+inf", 0x07FF: "nan", 0x0800: "nres", 0x0801: "reserved",
                          0x0802: "-inf"}
_FLOAT_SPECIAL: Final = {0x007FFFFE: "+inf", 0x007FFFFF: "nan", 0x00800000: "nres",
                         0x00800001: "reserved", 0x00800002: "-inf"}


@dataclass(frozen=True, slots=True)
class MderNumber:
    """A decoded SFLOAT/FLOAT: either a number (``special`` None) or a special value."""

    mantissa: int
    exponent: int
    special: str | None = None

    @property
    def decimal(self) -> Decimal | None:
        """The exact value, or None for a special value."""
        if self.special is not None:
            return None
        return Decimal(self.mantissa).scaleb(self.exponent)

    @property
    def value(self) -> float | None:
        """The value as the nearest float to the exact decimal, or None for a special value."""
        exact = self.decimal
        return None if exact is None else float(exact)


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def sfloat_from_raw(raw: int) -> MderNumber:
    """Decode a 16-bit SFLOAT word (11073-20601 F.8)."""
    mantissa = _signed(raw & 0x0FFF, 12)
    exponent = _signed(raw >> 12 & 0x0F, 4)
    return MderNumber(mantissa, exponent, _SFLOAT_SPECIAL.get(raw & 0xFFFF))


def float_from_raw(raw: int) -> MderNumber:
    """Decode a 32-bit FLOAT word (11073-20601 F.7)."""
    mantissa = _signed(raw & 0xFFFFFF, 24)
    exponent = _signed(raw >> 24 & 0xFF, 8)
    return MderNumber(mantissa, exponent, _FLOAT_SPECIAL.get(raw & 0xFFFFFFFF))


def _word(data: bytes, size: int, what: str) -> int:
    if len(data) < size:
        raise TruncatedPayload(characteristic=what, field="value", needed=size, got=len(data))
    return int.from_bytes(data[:size], "little")


def decode_sfloat(data: bytes) -> MderNumber:
    """Decode the first two bytes of ``data`` as a little-endian SFLOAT."""
    return sfloat_from_raw(_word(data, 2, "SFLOAT"))


def decode_float(data: bytes) -> MderNumber:
    """Decode the first four bytes of ``data`` as a little-endian FLOAT."""
    return float_from_raw(_word(data, 4, "FLOAT"))
