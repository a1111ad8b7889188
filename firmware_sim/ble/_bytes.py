"""Byte layouts the simulated BLE peripherals put on the air.

Written directly from the Bluetooth SIG GATT specifications (GSS characteristic
definitions, Glucose Service 1.0, Weight Scale Service 1.0, Blood Pressure
Service 1.1, Pulse Oximeter Service 1.0, Health Thermometer Service 1.0) and
IEEE 11073-20601 for the SFLOAT/FLOAT numbers.  Private to ``firmware_sim``:
it must never import ``device_drivers``, so that a codec bug and an encoder bug
cannot cancel each other out.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import datetime

# IEEE 11073-20601 special values (exponent 0).
SFLOAT_NAN = 0x07FF
FLOAT_NAN = 0x007FFFFF

# Record Access Control Point (Glucose Service 1.0, section 3.9).
RACP_REPORT_RECORDS = 0x01
RACP_DELETE_RECORDS = 0x02
RACP_ABORT = 0x03
RACP_REPORT_NUMBER = 0x04
RACP_NUMBER_RESPONSE = 0x05
RACP_RESPONSE_CODE = 0x06

RACP_OP_NULL = 0x00
RACP_OP_ALL = 0x01
RACP_OP_LE = 0x02
RACP_OP_GE = 0x03
RACP_OP_RANGE = 0x04
RACP_OP_FIRST = 0x05
RACP_OP_LAST = 0x06

RACP_FILTER_SEQUENCE = 0x01

RACP_SUCCESS = 0x01
RACP_OPCODE_NOT_SUPPORTED = 0x02
RACP_INVALID_OPERATOR = 0x03
RACP_OPERATOR_NOT_SUPPORTED = 0x04
RACP_INVALID_OPERAND = 0x05
RACP_NO_RECORDS = 0x06
RACP_ABORT_UNSUCCESSFUL = 0x07
RACP_OPERAND_NOT_SUPPORTED = 0x09


def sfloat(value: float, exponent: int) -> bytes:
    """Encode ``value`` as an IEEE 11073 16-bit SFLOAT with a fixed decimal exponent.

    NaN encodes as the reserved NaN word 0x07FF.  The exponent is fixed by the
    caller (a device has a fixed resolution), so the mantissa is a rounding.
    """
    if math.isnan(value):
        return struct.pack("<H", SFLOAT_NAN)
    mantissa = round(value / 10.0**exponent)
    if not -2045 <= mantissa <= 2045 or not -8 <= exponent <= 7:
        raise ValueError(f"{value} does not fit an SFLOAT with exponent {exponent}")
    return struct.pack("<H", ((exponent & 0x0F) << 12) | (mantissa & 0x0FFF))


def float32(value: float, exponent: int) -> bytes:
    """Encode ``value`` as an IEEE 11073 32-bit FLOAT with a fixed decimal exponent."""
    if math.isnan(value):
        return struct.pack("<I", FLOAT_NAN)
    mantissa = round(value / 10.0**exponent)
    if not -(2**23) + 3 <= mantissa <= 2**23 - 3:
        raise ValueError(f"{value} does not fit a FLOAT with exponent {exponent}")
    return struct.pack("<I", ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF))


def date_time(when: datetime) -> bytes:
    """Date Time (0x2A08): year u16, month, day, hours, minutes, seconds."""
    return struct.pack(
        "<HBBBBB", when.year, when.month, when.day, when.hour, when.minute, when.second
    )


@dataclass(frozen=True)
class GlucoseRecord:
    """One stored glucose record, already in device units and device time."""

    sequence: int
    base_time: datetime
    concentration: float  # kg/L or mol/L, see ``mmol``
    mmol: bool = False
    sample_type: int = 1  # capillary whole blood
    location: int = 1  # finger
    time_offset_min: int | None = None
    sensor_status: int | None = None


def glucose_measurement(record: GlucoseRecord) -> bytes:
    """Glucose Measurement (0x2A18), GLS 1.0 section 3.106."""
    flags = 0x02  # concentration and type/location present
    if record.time_offset_min is not None:
        flags |= 0x01
    if record.mmol:
        flags |= 0x04
    if record.sensor_status is not None:
        flags |= 0x08
    out = bytes([flags]) + struct.pack("<H", record.sequence) + date_time(record.base_time)
    if record.time_offset_min is not None:
        out += struct.pack("<h", record.time_offset_min)
    exponent = -4 if record.mmol else -5
    out += sfloat(record.concentration, exponent)
    out += bytes([(record.location << 4) | record.sample_type])
    if record.sensor_status is not None:
        out += struct.pack("<H", record.sensor_status)
    return out


def racp_response(request_opcode: int, code: int) -> bytes:
    """RACP Response Code: ``06 00 <request opcode> <code>``."""
    return bytes([RACP_RESPONSE_CODE, RACP_OP_NULL, request_opcode, code])


def racp_number(count: int) -> bytes:
    """RACP Number of Stored Records Response: ``05 00 <u16 count>``."""
    return bytes([RACP_NUMBER_RESPONSE, RACP_OP_NULL]) + struct.pack("<H", count)


def weight_measurement(
    weight: float, *, imperial: bool, when: datetime | None, user_id: int | None
) -> bytes:
    """Weight Measurement (0x2A9D): SI 0.005 kg or imperial 0.01 lb resolution."""
    flags = 0x01 if imperial else 0x00
    flags |= 0x02 if when is not None else 0
    flags |= 0x04 if user_id is not None else 0
    raw = 0xFFFF if math.isnan(weight) else round(weight / (0.01 if imperial else 0.005))
    out = bytes([flags]) + struct.pack("<H", raw)
    if when is not None:
        out += date_time(when)
    if user_id is not None:
        out += bytes([user_id])
    return out


def blood_pressure_measurement(
    systolic: float,
    diastolic: float,
    mean: float,
    *,
    kpa: bool,
    when: datetime | None,
    pulse: float | None,
    user_id: int | None,
) -> bytes:
    """Blood Pressure Measurement (0x2A35): three SFLOATs then optional fields."""
    flags = 0x01 if kpa else 0x00
    flags |= 0x02 if when is not None else 0
    flags |= 0x04 if pulse is not None else 0
    flags |= 0x08 if user_id is not None else 0
    exponent = -1 if kpa else 0
    out = bytes([flags]) + b"".join(sfloat(v, exponent) for v in (systolic, diastolic, mean))
    if when is not None:
        out += date_time(when)
    if pulse is not None:
        out += sfloat(pulse, 0)
    if user_id is not None:
        out += bytes([user_id])
    return out


def plx_spot_check(spo2: float, pulse: float, *, when: datetime | None) -> bytes:
    """PLX Spot-Check Measurement (0x2A5E); no time stamp means "clock not set" (b4)."""
    flags = 0x01 if when is not None else 0x10
    out = bytes([flags]) + sfloat(spo2, 0) + sfloat(pulse, 0)
    if when is not None:
        out += date_time(when)
    return out


def temperature_measurement(
    temperature: float, *, fahrenheit: bool, when: datetime | None, site: int | None
) -> bytes:
    """Temperature Measurement (0x2A1C): FLOAT with 0.01 degree resolution."""
    flags = 0x01 if fahrenheit else 0x00
    flags |= 0x02 if when is not None else 0
    flags |= 0x04 if site is not None else 0
    out = bytes([flags]) + float32(temperature, -2)
    if when is not None:
        out += date_time(when)
    if site is not None:
        out += bytes([site])
    return out
