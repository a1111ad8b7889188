"""Blood Pressure Service 1.0: Measurement 0x2A35 and Intermediate Cuff Pressure 0x2A36.

References: BLS 1.0 section 3.1 (Blood Pressure Measurement) and 3.2 (Intermediate Cuff
Pressure, same layout; the current cuff pressure sits in the systolic slot, diastolic and mean
are NaN) and GSS entries of the same names. 1 kPa = 7.50062 mmHg.

An intermediate cuff pressure is the cuff inflating, not the patient's blood pressure: it is
reported as ``Kind.UNKNOWN`` with flags ``intermediate_cuff_pressure`` and ``non_patient_data``
so no rule ever reads 180 mmHg of cuff as hypertension.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.ble._observe import ExtraValue, Record, bit_flags, identity, observe, scale
from device_drivers.ble.mder import MderNumber
from device_drivers.ble.reader import DateTimeValue, Reader
from vigie.contract import MMHG_PER_KPA, Kind, Observation

__all__ = [
    "BloodPressureMeasurement",
    "blood_pressure_observations",
    "decode_blood_pressure_measurement",
    "decode_intermediate_cuff_pressure",
    "intermediate_cuff_pressure_observations",
]

STATUS: Final = {0: "body_movement", 1: "cuff_too_loose", 2: "irregular_pulse",
                 5: "improper_position"}
PULSE_RANGE: Final = {1: "pulse_rate_above_range", 2: "pulse_rate_below_range",
                      3: "pulse_rate_range_reserved"}


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """One BP Measurement (or Intermediate Cuff Pressure) record as sent."""

    kpa: bool
    systolic: MderNumber
    diastolic: MderNumber
    mean: MderNumber
    time: DateTimeValue | None = None
    pulse_rate: MderNumber | None = None
    user_id: int | None = None
    status: int | None = None

    @property
    def unit(self) -> str:
        return "kPa" if self.kpa else "mm[Hg]"

    @property
    def status_flags(self) -> tuple[str, ...]:
        """Measurement status bits (BLS 3.1.1.7); bits 3-4 are the pulse rate range."""
        if self.status is None:
            return ()
        pulse = PULSE_RANGE.get(self.status >> 3 & 0x03)
        return bit_flags(self.status, STATUS) + ((pulse,) if pulse else ())


def _decode(data: bytes, name: str) -> BloodPressureMeasurement:
    rd = Reader(data, name)
    flags = rd.u8("flags")
    systolic, diastolic, mean = rd.sfloat("systolic"), rd.sfloat("diastolic"), rd.sfloat("MAP")
    time = rd.date_time("time stamp") if flags & 0x02 else None
    pulse = rd.sfloat("pulse rate") if flags & 0x04 else None
    user = rd.u8("user id") if flags & 0x08 else None
    status = rd.u16("measurement status") if flags & 0x10 else None
    return BloodPressureMeasurement(bool(flags & 0x01), systolic, diastolic, mean, time, pulse,
                                    user, status)


def decode_blood_pressure_measurement(data: bytes) -> BloodPressureMeasurement:
    """Decode Blood Pressure Measurement 0x2A35 (BLS 3.1)."""
    return _decode(data, "Blood Pressure Measurement")


def decode_intermediate_cuff_pressure(data: bytes) -> BloodPressureMeasurement:
    """Decode Intermediate Cuff Pressure 0x2A36 (BLS 3.2): cuff pressure in ``systolic``."""
    return _decode(data, "Intermediate Cuff Pressure")


def _record(m: BloodPressureMeasurement, extra: dict[str, ExtraValue]) -> Record:
    time_flags = (m.time.flag,) if m.time is not None and m.time.flag else ()
    return Record(device_time=None if m.time is None else m.time.when, user_index=m.user_id,
                  flags=time_flags + m.status_flags, extra=extra)


def blood_pressure_observations(m: BloodPressureMeasurement) -> list[Observation]:
    """Systolic, diastolic and mean arterial pressure in mm[Hg], plus heart rate if sent."""
    record = _record(m, {})
    factor = scale(MMHG_PER_KPA) if m.kpa else identity
    observations = [observe(kind, number, m.unit, record, factor) for kind, number in (
        (Kind.BP_SYSTOLIC, m.systolic), (Kind.BP_DIASTOLIC, m.diastolic),
        (Kind.BP_MEAN, m.mean))]
    if m.pulse_rate is not None:
        observations.append(observe(Kind.HEART_RATE, m.pulse_rate, "/min", record))
    return observations


def intermediate_cuff_pressure_observations(m: BloodPressureMeasurement) -> list[Observation]:
    """The current cuff pressure, in mm[Hg], as a non-patient ``Kind.UNKNOWN`` observation."""
    pulse = None if m.pulse_rate is None else m.pulse_rate.value
    record = _record(m, {"quantity": "cuff_pressure", "pulse_rate": pulse})
    factor = scale(MMHG_PER_KPA) if m.kpa else identity
    return [observe(Kind.UNKNOWN, m.systolic, m.unit, record, factor, unit="mm[Hg]",
                    more_flags=("intermediate_cuff_pressure", "non_patient_data"))]
