"""IEEE 11073-20601 SFLOAT/FLOAT and Date Time reference values."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from device_drivers.ble import (
    TruncatedPayload,
    date_time_from_bytes,
    decode_float,
    decode_sfloat,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Raw words from the HL7 PHD IG "Mder FLOATs and SFLOATs" tables (big-endian words there,
# little-endian on the wire here), plus 0xF0BD from Nordic's BPM test (18.9 kPa).
@pytest.mark.parametrize(("word", "value", "exponent"), [
    (0x0002, "2", 0), (0xF014, "2.0", -1), (0xE0C8, "2.00", -2), (0x1002, "20", 1),
    (0x2002, "200", 2), (0x00C8, "200", 0), (0x04D2, "1234", 0), (0x0B2E, "-1234", 0),
    (0xF0BD, "18.9", -1), (0xB05F, "0.00095", -5), (0x8001, "1E-8", -8),
    (0x77FD, "2045E7", 7), (0x0FFF, "-1", 0),
])
def test_sfloat_values(word: int, value: str, exponent: int) -> None:
    number = decode_sfloat(word.to_bytes(2, "little"))
    assert number.special is None
    assert number.decimal == Decimal(value)
    assert number.exponent == exponent
    assert number.value == float(Decimal(value))


def test_sfloat_value_is_decimal_exact() -> None:
    # 189 * 10**-1 computed in binary floating point is 18.900000000000002.
    assert decode_sfloat(h("BDF0")).value == 18.9
    assert decode_sfloat(h("5FB0")).value == 0.00095


@pytest.mark.parametrize(("word", "special"), [
    (0x07FF, "nan"), (0x0800, "nres"), (0x07FE, "+inf"), (0x0802, "-inf"),
    (0x0801, "reserved"),
])
def test_sfloat_specials(word: int, special: str) -> None:
    number = decode_sfloat(word.to_bytes(2, "little"))
    assert number.special == special
    assert number.value is None
    assert number.decimal is None


def test_sfloat_special_mantissa_with_exponent_is_a_number() -> None:
    # 11073-20601 F.8 reserves whole words with exponent 0; 0x17FF is 2047 x 10^1.
    assert decode_sfloat(h("FF17")).value == 20470.0


@pytest.mark.parametrize(("word", "value"), [
    (0x00000002, "2"), (0xFF000014, "2.0"), (0xFE0000C8, "2.00"), (0x01000002, "20"),
    (0x02000002, "200"), (0x000004D2, "1234"), (0x00FFFB2E, "-1234"),
    (0xFF00016E, "36.6"), (0x80000001, "1E-128"),
])
def test_float_values(word: int, value: str) -> None:
    number = decode_float(word.to_bytes(4, "little"))
    assert number.special is None
    assert number.decimal == Decimal(value)


@pytest.mark.parametrize(("word", "special"), [
    (0x007FFFFF, "nan"), (0x00800000, "nres"), (0x007FFFFE, "+inf"), (0x00800002, "-inf"),
    (0x00800001, "reserved"),
])
def test_float_specials(word: int, special: str) -> None:
    number = decode_float(word.to_bytes(4, "little"))
    assert (number.special, number.value) == (special, None)


@pytest.mark.parametrize(("decode", "size"), [(decode_sfloat, 2), (decode_float, 4)])
def test_numbers_truncated(decode: object, size: int) -> None:
    for length in range(size):
        with pytest.raises(TruncatedPayload):
            decode(bytes(length))  # type: ignore[operator]


def test_date_time_known() -> None:
    # Date Time field of Nordic's GlucoseMeasurementDataCallbackTest: 2019-02-27 11:10:30.
    value = date_time_from_bytes(h("E307021B0B0A1E"))
    assert value.when == datetime(2019, 2, 27, 11, 10, 30)
    assert value.flag is None


@pytest.mark.parametrize("raw", ["00000000000000", "0000041114293B", "E30700010000 00",
                                 "E3070200000000"])
def test_date_time_unknown(raw: str) -> None:
    # GSS Date Time: year 0, month 0 or day 0 = "not known".
    value = date_time_from_bytes(h(raw))
    assert (value.when, value.flag) == (None, "time_unknown")


@pytest.mark.parametrize("raw", ["E3070D01000000", "E307021E000000", "E307010118 0000",
                                 "01000101000000"])
def test_date_time_invalid(raw: str) -> None:
    value = date_time_from_bytes(h(raw))
    assert (value.when, value.flag) == (None, "time_invalid")
