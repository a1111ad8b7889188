"""Pulse Oximeter Service 1.0: PLX Spot-Check 0x2A5E and PLX Continuous 0x2A5F.

References: PLXS 1.0 section 3.1 (Spot-Check Measurement), 3.2 (Continuous Measurement) and
GSS entries of the same names. SpO2 in %, pulse rate in beats per minute, both SFLOAT.
Measurement status is u16, device and sensor status u24. Data marked "for demonstration" or
"for testing" is flagged ``non_patient_data``; "device clock is not set" drops the time stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.ble._observe import ExtraValue, Record, bit_flags, observe
from device_drivers.ble.mder import MderNumber
from device_drivers.ble.reader import DateTimeValue, Reader
from vigie.contract import Kind, Observation

__all__ = [
    "PlxContinuous",
    "PlxSpotCheck",
    "decode_plx_continuous",
    "decode_plx_spot_check",
    "plx_continuous_observations",
    "plx_spot_check_observations",
]

MEASUREMENT_STATUS: Final = {
    5: "measurement_ongoing", 6: "early_estimate", 7: "validated", 8: "fully_qualified",
    9: "from_storage", 10: "demonstration", 11: "testing", 12: "calibration_ongoing",
    13: "measurement_unavailable", 14: "questionable_measurement", 15: "invalid_measurement",
}
DEVICE_SENSOR_STATUS: Final = {
    0: "extended_display_update_ongoing", 1: "equipment_malfunction",
    2: "signal_processing_irregularity", 3: "inadequate_signal", 4: "poor_signal",
    5: "low_perfusion", 6: "erratic_signal", 7: "nonpulsatile_signal", 8: "questionable_pulse",
    9: "signal_analysis_ongoing", 10: "sensor_interference", 11: "sensor_unconnected_to_user",
    12: "unknown_sensor_connected", 13: "sensor_displaced", 14: "sensor_malfunctioning",
    15: "sensor_disconnected",
}
_NON_PATIENT: Final = frozenset({"demonstration", "testing"})


def _status_flags(measurement: int | None, device: int | None) -> tuple[str, ...]:
    flags = bit_flags(measurement or 0, MEASUREMENT_STATUS)
    flags += bit_flags(device or 0, DEVICE_SENSOR_STATUS)
    return flags + (("non_patient_data",) if _NON_PATIENT & set(flags) else ())


@dataclass(frozen=True, slots=True)
class PlxSpotCheck:
    """One PLX Spot-Check Measurement as sent."""

    spo2: MderNumber
    pulse_rate: MderNumber
    time: DateTimeValue | None = None
    measurement_status: int | None = None
    device_sensor_status: int | None = None
    pulse_amplitude_index: MderNumber | None = None
    clock_not_set: bool = False


def decode_plx_spot_check(data: bytes) -> PlxSpotCheck:
    """Decode PLX Spot-Check Measurement 0x2A5E (PLXS 3.1)."""
    rd = Reader(data, "PLX Spot-Check Measurement")
    flags = rd.u8("flags")
    spo2, pulse = rd.sfloat("SpO2"), rd.sfloat("pulse rate")
    time = rd.date_time("time stamp") if flags & 0x01 else None
    status = rd.u16("measurement status") if flags & 0x02 else None
    device = rd.uint(3, "device and sensor status") if flags & 0x04 else None
    pai = rd.sfloat("pulse amplitude index") if flags & 0x08 else None
    return PlxSpotCheck(spo2, pulse, time, status, device, pai, bool(flags & 0x10))


def _pair(spo2: MderNumber, pulse: MderNumber, record: Record) -> list[Observation]:
    return [observe(Kind.SPO2, spo2, "%", record),
            observe(Kind.HEART_RATE, pulse, "/min", record)]


def plx_spot_check_observations(m: PlxSpotCheck) -> list[Observation]:
    """SpO2 (%) and heart rate (/min) of a spot check."""
    flags = _status_flags(m.measurement_status, m.device_sensor_status)
    when = None if m.time is None or m.clock_not_set else m.time.when
    if m.clock_not_set:
        flags = ("device_clock_not_set", *flags)
    elif m.time is not None and m.time.flag:
        flags = (m.time.flag, *flags)
    pai = None if m.pulse_amplitude_index is None else m.pulse_amplitude_index.value
    extra: dict[str, ExtraValue] = {} if pai is None else {"pulse_amplitude_index": pai}
    return _pair(m.spo2, m.pulse_rate, Record(device_time=when, flags=flags, extra=extra))


@dataclass(frozen=True, slots=True)
class PlxContinuous:
    """One PLX Continuous Measurement as sent; ``fast``/``slow`` are (SpO2, PR) pairs."""

    spo2: MderNumber
    pulse_rate: MderNumber
    fast: tuple[MderNumber, MderNumber] | None = None
    slow: tuple[MderNumber, MderNumber] | None = None
    measurement_status: int | None = None
    device_sensor_status: int | None = None
    pulse_amplitude_index: MderNumber | None = None


def decode_plx_continuous(data: bytes) -> PlxContinuous:
    """Decode PLX Continuous Measurement 0x2A5F (PLXS 3.2)."""
    rd = Reader(data, "PLX Continuous Measurement")
    flags = rd.u8("flags")
    spo2, pulse = rd.sfloat("SpO2"), rd.sfloat("pulse rate")
    fast = (rd.sfloat("SpO2 fast"), rd.sfloat("PR fast")) if flags & 0x01 else None
    slow = (rd.sfloat("SpO2 slow"), rd.sfloat("PR slow")) if flags & 0x02 else None
    status = rd.u16("measurement status") if flags & 0x04 else None
    device = rd.uint(3, "device and sensor status") if flags & 0x08 else None
    pai = rd.sfloat("pulse amplitude index") if flags & 0x10 else None
    return PlxContinuous(spo2, pulse, fast, slow, status, device, pai)


def _continuous_extra(m: PlxContinuous) -> dict[str, ExtraValue]:
    extra: dict[str, ExtraValue] = {}
    for name, pair in (("fast", m.fast), ("slow", m.slow)):
        if pair is not None:
            extra[f"spo2_{name}"], extra[f"pulse_rate_{name}"] = pair[0].value, pair[1].value
    if m.pulse_amplitude_index is not None:
        extra["pulse_amplitude_index"] = m.pulse_amplitude_index.value
    return extra


def plx_continuous_observations(m: PlxContinuous) -> list[Observation]:
    """SpO2 and heart rate of the normal (reporting) averaging; fast/slow go to ``extra``."""
    record = Record(flags=_status_flags(m.measurement_status, m.device_sensor_status),
                    extra=_continuous_extra(m))
    return _pair(m.spo2, m.pulse_rate, record)
