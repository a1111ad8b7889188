"""Simulator encoders against reference bytes (same public vectors as the codec tests)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from firmware_sim.ble.encoders import (
    UNKNOWN_TIME,
    encode_blood_pressure_measurement,
    encode_date_time,
    encode_float,
    encode_glucose_context,
    encode_glucose_measurement,
    encode_intermediate_cuff_pressure,
    encode_plx_continuous,
    encode_plx_spot_check,
    encode_racp_number_of_records,
    encode_racp_response_code,
    encode_sfloat,
    encode_temperature_measurement,
    encode_weight_measurement,
    sfloat_bytes,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# HL7 PHD IG "Mder FLOATs and SFLOATs" table (words little-endian here).
@pytest.mark.parametrize(("value", "word"), [
    (2, 0x0002), (Decimal("2.0"), 0xF014), (Decimal("2.00"), 0xE0C8),
    (Decimal("2E+1"), 0x1002),
    (200, 0x00C8), (1234, 0x04D2), (-1234, 0x0B2E), (18.9, 0xF0BD), ("0.00095", 0xB05F),
    # Five digits do not fit 12 bits: rounded half-even, 1234.5e-1 -> 1234e-1.
    (123.45, 0xF4D2),
    # 2047 is a legal mantissa at exponent 1, but readers that test the mantissa alone take
    # it for NaN: the encoder keeps |mantissa| <= 2045 and rounds to 205e2.
    (20470, 0x20CD),
    (Decimal("1E+8"), 0x700A),  # exponent 8 does not fit: 10e7
])
def test_sfloat(value: int | float | Decimal | str, word: int) -> None:
    assert encode_sfloat(value) == word.to_bytes(2, "little")


@pytest.mark.parametrize(("name", "word"), [("nan", 0x07FF), ("nres", 0x0800),
                                            ("+inf", 0x07FE), ("-inf", 0x0802),
                                            ("reserved", 0x0801)])
def test_sfloat_specials(name: str, word: int) -> None:
    assert encode_sfloat(name) == word.to_bytes(2, "little")


@pytest.mark.parametrize(("name", "word"), [("nan", 0x007FFFFF), ("nres", 0x00800000),
                                            ("+inf", 0x007FFFFE), ("-inf", 0x00800002),
                                            ("reserved", 0x00800001)])
def test_float_specials(name: str, word: int) -> None:
    assert encode_float(name) == word.to_bytes(4, "little")


def test_float_values() -> None:
    assert encode_float(Decimal("36.6")) == h("6E0100FF")
    assert encode_float(Decimal("-1234")) == h("2EFBFF00")
    assert encode_float(Decimal("2.00")) == h("C80000FE")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("1E+20"), "abc"])
def test_numbers_refused(bad: float | Decimal | str) -> None:
    with pytest.raises((ValueError, ArithmeticError)):
        encode_sfloat(bad)


def test_sfloat_parts_range() -> None:
    with pytest.raises(ValueError):
        sfloat_bytes(2048, 0)
    with pytest.raises(ValueError):
        sfloat_bytes(0, 8)


def test_date_time() -> None:
    assert encode_date_time(datetime(2019, 2, 27, 11, 10, 30)) == h("E307021B0B0A1E")
    assert encode_date_time(UNKNOWN_TIME) == bytes(7)


def test_glucose_nordic_vector() -> None:
    # Nordic GlucoseMeasurementDataCallbackTest bytes.
    assert encode_glucose_measurement(
        sequence=1, base_time=datetime(2019, 2, 27, 11, 10, 30), time_offset_min=-5,
        concentration=30, sample_type=2, sample_location=1, sensor_status=0x0105,
        context_follows=True) == h("1B 0100 E307021B0B0A1E FBFF 1E00 12 0501")


def test_glucose_mol() -> None:
    assert encode_glucose_measurement(
        sequence=2, base_time=datetime(2024, 3, 5, 8, 30), concentration=Decimal("0.0055"),
        unit="mol/L", sample_type=1, sample_location=1) == h("06 0200 E807030508 1E00 37C0 11")


def test_glucose_context() -> None:
    assert encode_glucose_context(
        sequence=0, extended_flags=0xB3, carbohydrate_id=3, carbohydrate_kg=100, meal=4,
        tester=2, health=1, exercise_duration_s=60, exercise_intensity_pct=50,
        medication_id=4, medication=Decimal("1.23"), medication_unit="L",
        hba1c_pct=Decimal("34.5")) == h("FF 0000 B3 03 6400 04 12 3C00 32 04 7BE0 59F1")
    assert encode_glucose_context(sequence=1) == h("00 0100")


def test_weight() -> None:
    assert encode_weight_measurement(
        weight=Decimal("70"), time_stamp=datetime(2024, 3, 5, 8), user_id=1,
        bmi=Decimal("22.9"), height=Decimal("1.75")) == h("0E B036 E80703050800 00 01 E500 D606")
    assert encode_weight_measurement(weight=Decimal("154.32"), imperial=True,
                                     bmi=Decimal("22.9"), height=Decimal("68.9")) == h(
        "09 483C E500 B102")
    assert encode_weight_measurement(weight=None, user_id=255) == h("04 FFFF FF")
    with pytest.raises(ValueError):
        encode_weight_measurement(weight=70, bmi=22)


def test_blood_pressure_nordic_vectors() -> None:
    # Nordic BloodPressureMeasurementDataCallbackTest: full, kPa with some fields, minimal.
    assert encode_blood_pressure_measurement(
        systolic=138, diastolic=88, mean=120, time_stamp=datetime(1, 4, 17, 20, 41, 59),
        pulse_rate=60, user_id=1, status=0b100111,
    )[:7] == h("1E 8A00 5800 7800")
    assert encode_blood_pressure_measurement(
        systolic=Decimal("18.9"), diastolic=11, mean=Decimal("15.9"), kpa=True, pulse_rate=60,
        status=0b010010) == h("15BDF00B009FF03C001200")
    assert encode_blood_pressure_measurement(
        systolic=Decimal("18.9"), diastolic=11, mean=Decimal("15.9")) == h("00BDF00B009FF0")


def test_intermediate_cuff_pressure() -> None:
    assert encode_intermediate_cuff_pressure(cuff_pressure=152, pulse_rate=70) == h(
        "04 9800 FF07 FF07 4600")


def test_plx() -> None:
    assert encode_plx_spot_check(
        spo2=97, pulse_rate=72, time_stamp=datetime(2024, 3, 5, 8), measurement_status=0x80,
        device_sensor_status=0x20, pulse_amplitude_index=Decimal("5.2")) == h(
        "0F 6100 4800 E80703050800 00 8000 200000 34F0")
    assert encode_plx_continuous(
        spo2=97, pulse_rate=72, fast=(96, 75), slow=(98, 70), measurement_status=0x8000,
        device_sensor_status=0x8000, pulse_amplitude_index=Decimal("1.0")) == h(
        "1F 6100 4800 6000 4B00 6200 4600 0080 008000 0AF0")


def test_temperature() -> None:
    assert encode_temperature_measurement(temperature=Decimal("36.6")) == h("00 6E0100FF")
    assert encode_temperature_measurement(
        temperature=Decimal("98.6"), fahrenheit=True, time_stamp=datetime(2024, 3, 5, 8),
        temperature_type=6) == h("07 DA0300FF E80703050800 00 06")


def test_racp_responses() -> None:
    assert encode_racp_response_code(request_opcode=1, response_code=6) == h("06000106")
    assert encode_racp_number_of_records(count=258) == h("05000201")
