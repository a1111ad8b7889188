"""Bluetooth SIG health-profile encoders for simulated peripherals, written from the specs.

This module deliberately shares no code with ``device_drivers.ble``: property tests encode
here and decode there, so a misreading of the spec has to be made twice, independently, to go
unnoticed. Every function takes keyword arguments and returns the characteristic value bytes.

Number arguments (``Number``) accept ``int``, ``float``, ``Decimal`` or a decimal string; the
precision of the argument is kept (``Decimal("5.50")`` is sent with two decimals). The strings
"nan", "nres", "+inf", "-inf" and "reserved" send the IEEE 11073-20601 special values.

Sources: IEEE 11073-20601 annex F.7/F.8 (FLOAT/SFLOAT), GATT Specification Supplement (Date
Time, Glucose Measurement and Context, Weight Measurement, Blood Pressure Measurement,
Intermediate Cuff Pressure, PLX Spot-Check/Continuous, Temperature Measurement), GLS 1.0 4.9
(Record Access Control Point).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Literal

__all__ = [
    "UNKNOWN_TIME",
    "Number",
    "encode_blood_pressure_measurement",
    "encode_date_time",
    "encode_float",
    "encode_glucose_context",
    "encode_glucose_measurement",
    "encode_intermediate_cuff_pressure",
    "encode_plx_continuous",
    "encode_plx_spot_check",
    "encode_racp_number_of_records",
    "encode_racp_response_code",
    "encode_sfloat",
    "encode_temperature_measurement",
    "encode_weight_measurement",
    "float_bytes",
    "sfloat_bytes",
]

Number = int | float | Decimal | str
UNKNOWN_TIME: Final = "unknown"
TimeStamp = datetime | Literal["unknown"]

# Special values: whole raw words with a zero exponent (11073-20601 F.7, F.8).
_SFLOAT_SPECIALS: Final = {"+inf": 0x07FE, "nan": 0x07FF, "nres": 0x0800, "reserved": 0x0801,
                           "-inf": 0x0802}
_FLOAT_SPECIALS: Final = {"+inf": 0x007FFFFE, "nan": 0x007FFFFF, "nres": 0x00800000,
                          "reserved": 0x00800001, "-inf": 0x00800002}


def _u8(value: int) -> bytes:
    return value.to_bytes(1, "little")


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def _s16(value: int) -> bytes:
    return value.to_bytes(2, "little", signed=True)


def sfloat_bytes(mantissa: int, exponent: int) -> bytes:
    """Pack a 12-bit mantissa and a 4-bit exponent, both two's complement."""
    if not (-2048 <= mantissa <= 2047 and -8 <= exponent <= 7):
        raise ValueError(f"SFLOAT parts out of range: {mantissa}e{exponent}")
    return _u16((exponent & 0xF) << 12 | (mantissa & 0xFFF))


def float_bytes(mantissa: int, exponent: int) -> bytes:
    """Pack a 24-bit mantissa and an 8-bit exponent, both two's complement."""
    if not (-(1 << 23) <= mantissa < (1 << 23) and -128 <= exponent <= 127):
        raise ValueError(f"FLOAT parts out of range: {mantissa}e{exponent}")
    return ((exponent & 0xFF) << 24 | (mantissa & 0xFFFFFF)).to_bytes(4, "little")


def _as_decimal(value: int | float | Decimal | str) -> Decimal:
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"not a finite number: {value!r}; use 'nan', '+inf' or '-inf'")
    return exact


def _parts(value: Number, limit: int, exp_min: int, exp_max: int) -> tuple[int, int]:
    """Mantissa and exponent for ``value``: its own precision, rounded only when too long.

    ``limit`` keeps the mantissa clear of the special raw words, whatever the exponent, because
    some readers test the mantissa alone.
    """
    exact = _as_decimal(value)
    exponent = max(int(exact.as_tuple().exponent), exp_min)
    mantissa = int(exact.scaleb(-exponent).to_integral_value(ROUND_HALF_EVEN))
    while abs(mantissa) > limit:
        exponent += 1
        mantissa = int(exact.scaleb(-exponent).to_integral_value(ROUND_HALF_EVEN))
    while exponent > exp_max and abs(mantissa * 10) <= limit:
        mantissa, exponent = mantissa * 10, exponent - 1
    if exponent > exp_max:
        raise ValueError(f"{value!r} is too large to encode")
    return mantissa, exponent


def encode_sfloat(value: Number) -> bytes:
    """Encode an SFLOAT (16-bit): a number, or one of the special value names."""
    if isinstance(value, str) and value.lower() in _SFLOAT_SPECIALS:
        return _u16(_SFLOAT_SPECIALS[value.lower()])
    return sfloat_bytes(*_parts(value, 2045, -8, 7))


def encode_float(value: Number) -> bytes:
    """Encode a FLOAT (32-bit): a number, or one of the special value names."""
    if isinstance(value, str) and value.lower() in _FLOAT_SPECIALS:
        return _FLOAT_SPECIALS[value.lower()].to_bytes(4, "little")
    return float_bytes(*_parts(value, (1 << 23) - 3, -128, 127))


def encode_date_time(when: TimeStamp) -> bytes:
    """Date Time (7 bytes): year u16, month, day, hours, minutes, seconds; all zero = unknown."""
    if when == UNKNOWN_TIME:
        return bytes(7)
    if not isinstance(when, datetime):
        raise ValueError(f"time stamp must be a datetime or 'unknown', got {when!r}")
    return _u16(when.year) + bytes([when.month, when.day, when.hour, when.minute, when.second])


def _optional_time(when: TimeStamp | None) -> bytes:
    return b"" if when is None else encode_date_time(when)


def encode_glucose_measurement(
    *, sequence: int, base_time: TimeStamp, concentration: Number | None = None,
    unit: Literal["kg/L", "mol/L"] = "kg/L", sample_type: int = 1, sample_location: int = 1,
    time_offset_min: int | None = None, sensor_status: int | None = None,
    context_follows: bool = False,
) -> bytes:
    """Glucose Measurement 0x2A18. ``concentration`` is in ``unit`` (e.g. 0.00095 kg/L)."""
    flags = ((time_offset_min is not None) | (concentration is not None) << 1
             | (unit == "mol/L") << 2 | (sensor_status is not None) << 3
             | context_follows << 4)
    body = _u8(flags) + _u16(sequence) + encode_date_time(base_time)
    if time_offset_min is not None:
        body += _s16(time_offset_min)
    if concentration is not None:
        body += encode_sfloat(concentration) + _u8(sample_location << 4 | sample_type)
    if sensor_status is not None:
        body += _u16(sensor_status)
    return body


def encode_glucose_context(
    *, sequence: int, carbohydrate_id: int | None = None, carbohydrate_kg: Number = 0,
    meal: int | None = None, tester: int | None = None, health: int = 15,
    exercise_duration_s: int | None = None, exercise_intensity_pct: int = 0,
    medication_id: int | None = None, medication: Number = 0,
    medication_unit: Literal["kg", "L"] = "kg", hba1c_pct: Number | None = None,
    extended_flags: int | None = None,
) -> bytes:
    """Glucose Measurement Context 0x2A34; the extended flags byte follows the sequence."""
    present = [carbohydrate_id, meal, tester, exercise_duration_s, medication_id]
    flags = sum(1 << bit for bit, item in enumerate(present) if item is not None)
    flags |= (medication_unit == "L") << 5 | (hba1c_pct is not None) << 6
    flags |= (extended_flags is not None) << 7
    body = _u8(flags) + _u16(sequence)
    body += b"" if extended_flags is None else _u8(extended_flags)
    if carbohydrate_id is not None:
        body += _u8(carbohydrate_id) + encode_sfloat(carbohydrate_kg)
    body += b"" if meal is None else _u8(meal)
    body += b"" if tester is None else _u8(health << 4 | tester)
    if exercise_duration_s is not None:
        body += _u16(exercise_duration_s) + _u8(exercise_intensity_pct)
    if medication_id is not None:
        body += _u8(medication_id) + encode_sfloat(medication)
    return body + (b"" if hba1c_pct is None else encode_sfloat(hba1c_pct))


def _steps(value: Number, step: str) -> int:
    return int((_as_decimal(value) / Decimal(step)).to_integral_value(ROUND_HALF_EVEN))


def encode_weight_measurement(
    *, weight: Number | None, imperial: bool = False, time_stamp: TimeStamp | None = None,
    user_id: int | None = None, bmi: Number | None = None, height: Number | None = None,
) -> bytes:
    """Weight Measurement 0x2A9D. ``weight`` in kg (0.005 steps) or lb (0.01 steps); None
    sends 0xFFFF, "measurement unsuccessful". ``height`` in m (0.001) or in (0.1)."""
    if (bmi is None) != (height is None):
        raise ValueError("BMI and height are sent together")
    flags = (imperial | (time_stamp is not None) << 1 | (user_id is not None) << 2
             | (bmi is not None) << 3)
    raw = 0xFFFF if weight is None else _steps(weight, "0.01" if imperial else "0.005")
    body = _u8(flags) + _u16(raw) + _optional_time(time_stamp)
    body += b"" if user_id is None else _u8(user_id)
    if bmi is not None and height is not None:
        body += _u16(_steps(bmi, "0.1")) + _u16(_steps(height, "0.1" if imperial else "0.001"))
    return body


def _bp_tail(flags: int, time_stamp: TimeStamp | None, pulse_rate: Number | None,
             user_id: int | None, status: int | None) -> bytes:
    body = _optional_time(time_stamp)
    body += b"" if pulse_rate is None else encode_sfloat(pulse_rate)
    body += b"" if user_id is None else _u8(user_id)
    return body + (b"" if status is None else _u16(status))


def _bp_flags(kpa: bool, time_stamp: TimeStamp | None, pulse_rate: Number | None,
              user_id: int | None, status: int | None) -> int:
    return (kpa | (time_stamp is not None) << 1 | (pulse_rate is not None) << 2
            | (user_id is not None) << 3 | (status is not None) << 4)


def encode_blood_pressure_measurement(
    *, systolic: Number, diastolic: Number, mean: Number, kpa: bool = False,
    time_stamp: TimeStamp | None = None, pulse_rate: Number | None = None,
    user_id: int | None = None, status: int | None = None,
) -> bytes:
    """Blood Pressure Measurement 0x2A35, pressures in mmHg (or kPa with ``kpa``)."""
    flags = _bp_flags(kpa, time_stamp, pulse_rate, user_id, status)
    pressures = encode_sfloat(systolic) + encode_sfloat(diastolic) + encode_sfloat(mean)
    return _u8(flags) + pressures + _bp_tail(flags, time_stamp, pulse_rate, user_id, status)


def encode_intermediate_cuff_pressure(
    *, cuff_pressure: Number, kpa: bool = False, time_stamp: TimeStamp | None = None,
    pulse_rate: Number | None = None, user_id: int | None = None, status: int | None = None,
) -> bytes:
    """Intermediate Cuff Pressure 0x2A36: the cuff pressure, diastolic and mean unused (NaN)."""
    return encode_blood_pressure_measurement(
        systolic=cuff_pressure, diastolic="nan", mean="nan", kpa=kpa, time_stamp=time_stamp,
        pulse_rate=pulse_rate, user_id=user_id, status=status)


def encode_plx_spot_check(
    *, spo2: Number, pulse_rate: Number, time_stamp: TimeStamp | None = None,
    measurement_status: int | None = None, device_sensor_status: int | None = None,
    pulse_amplitude_index: Number | None = None, device_clock_not_set: bool = False,
) -> bytes:
    """PLX Spot-Check Measurement 0x2A5E: SpO2 %, pulse rate /min, optional fields."""
    flags = ((time_stamp is not None) | (measurement_status is not None) << 1
             | (device_sensor_status is not None) << 2
             | (pulse_amplitude_index is not None) << 3 | device_clock_not_set << 4)
    body = _u8(flags) + encode_sfloat(spo2) + encode_sfloat(pulse_rate)
    body += _optional_time(time_stamp)
    body += b"" if measurement_status is None else _u16(measurement_status)
    body += b"" if device_sensor_status is None else device_sensor_status.to_bytes(3, "little")
    return body + (b"" if pulse_amplitude_index is None else encode_sfloat(pulse_amplitude_index))


def encode_plx_continuous(
    *, spo2: Number, pulse_rate: Number, fast: tuple[Number, Number] | None = None,
    slow: tuple[Number, Number] | None = None, measurement_status: int | None = None,
    device_sensor_status: int | None = None, pulse_amplitude_index: Number | None = None,
) -> bytes:
    """PLX Continuous Measurement 0x2A5F: normal, [fast], [slow] (SpO2, PR) pairs, status."""
    flags = ((fast is not None) | (slow is not None) << 1 | (measurement_status is not None) << 2
             | (device_sensor_status is not None) << 3
             | (pulse_amplitude_index is not None) << 4)
    body = _u8(flags) + encode_sfloat(spo2) + encode_sfloat(pulse_rate)
    for pair in (fast, slow):
        body += b"" if pair is None else encode_sfloat(pair[0]) + encode_sfloat(pair[1])
    body += b"" if measurement_status is None else _u16(measurement_status)
    body += b"" if device_sensor_status is None else device_sensor_status.to_bytes(3, "little")
    return body + (b"" if pulse_amplitude_index is None else encode_sfloat(pulse_amplitude_index))


def encode_temperature_measurement(
    *, temperature: Number, fahrenheit: bool = False, time_stamp: TimeStamp | None = None,
    temperature_type: int | None = None,
) -> bytes:
    """Temperature Measurement 0x2A1C: FLOAT in Celsius (or Fahrenheit), [time], [type]."""
    flags = fahrenheit | (time_stamp is not None) << 1 | (temperature_type is not None) << 2
    body = _u8(flags) + encode_float(temperature) + _optional_time(time_stamp)
    return body + (b"" if temperature_type is None else _u8(temperature_type))


def encode_racp_response_code(*, request_opcode: int, response_code: int) -> bytes:
    """RACP Response Code indication: ``06 00 <request opcode> <code>`` (GLS 4.9)."""
    return bytes([0x06, 0x00, request_opcode, response_code])


def encode_racp_number_of_records(*, count: int) -> bytes:
    """RACP Number of Stored Records Response: ``05 00 <u16 count>`` (GLS 4.9)."""
    return bytes([0x05, 0x00]) + _u16(count)
