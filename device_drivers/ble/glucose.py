"""Glucose Service 1.0 characteristics: Measurement 0x2A18, Context 0x2A34, Feature 0x2A51.

References: Bluetooth SIG Glucose Profile/Service 1.0 (GLS 3.1 Glucose Measurement,
3.3 Glucose Measurement Context, 3.2 Glucose Feature) and the GATT Specification Supplement
(GSS) entries of the same names. Quirks handled here:

- Type and sample location share one byte: type is the LOW nibble, location the HIGH nibble.
- The user-facing time is base time + time offset (GLS 3.1.1.3); it is what we report.
- Control-solution readings (type 10 or location 4) are flagged ``control_solution`` and
  ``non_patient_data`` so a gateway can drop them.
- In the Context, the extended flags byte comes right after the sequence number (GSS), not
  after the other optional fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from device_drivers.ble._observe import ExtraValue, Record, bit_flags, describe, observe, scale
from device_drivers.ble.mder import MderNumber
from device_drivers.ble.reader import DateTimeValue, Reader
from vigie.contract import MGDL_PER_MMOLL, Kind, Observation

__all__ = [
    "GlucoseContext",
    "GlucoseFeature",
    "GlucoseMeasurement",
    "decode_glucose_context",
    "decode_glucose_feature",
    "decode_glucose_measurement",
    "glucose_context_observations",
    "glucose_observations",
    "merge_glucose_context",
]

SAMPLE_TYPES: Final = {
    1: "capillary_whole_blood", 2: "capillary_plasma", 3: "venous_whole_blood",
    4: "venous_plasma", 5: "arterial_whole_blood", 6: "arterial_plasma",
    7: "undetermined_whole_blood", 8: "undetermined_plasma", 9: "interstitial_fluid",
    10: "control_solution",
}
SAMPLE_LOCATIONS: Final = {1: "finger", 2: "alternate_site_test", 3: "earlobe",
                           4: "control_solution", 15: "not_available"}
SENSOR_STATUS: Final = {
    0: "battery_low", 1: "sensor_malfunction", 2: "sample_size_insufficient",
    3: "strip_insertion_error", 4: "strip_type_incorrect", 5: "result_too_high",
    6: "result_too_low", 7: "temperature_too_high", 8: "temperature_too_low",
    9: "read_interrupted", 10: "general_device_fault", 11: "time_fault",
}
FEATURES: Final = {
    0: "low_battery_detection", 1: "sensor_malfunction_detection", 2: "sensor_sample_size",
    3: "strip_insertion_error_detection", 4: "strip_type_error_detection",
    5: "result_high_low_detection", 6: "temperature_high_low_detection",
    7: "read_interrupt_detection", 8: "general_device_fault", 9: "time_fault",
    10: "multiple_bond",
}
CARBOHYDRATES: Final = {1: "breakfast", 2: "lunch", 3: "dinner", 4: "snack", 5: "drink",
                        6: "supper", 7: "brunch"}
MEALS: Final = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS: Final = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
HEALTH: Final = {1: "minor_health_issues", 2: "major_health_issues", 3: "during_menses",
                 4: "under_stress", 5: "no_health_issues", 15: "not_available"}
MEDICATIONS: Final = {1: "rapid_acting_insulin", 2: "short_acting_insulin",
                      3: "intermediate_acting_insulin", 4: "long_acting_insulin",
                      5: "pre_mixed_insulin"}
_CONTROL_TYPE: Final = 10
_CONTROL_LOCATION: Final = 4
_MGDL_PER_KG_L: Final = "100000"  # 1 kg/L = 10^6 mg / 10 dL
_MGDL_PER_MOL_L: Final = Decimal(1000) * Decimal(repr(MGDL_PER_MMOLL))


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """One Glucose Measurement record (GLS 3.1) as sent."""

    sequence: int
    base_time: DateTimeValue
    time_offset_min: int | None
    concentration: MderNumber | None
    unit: str  # "kg/L" or "mol/L" (flag bit 2)
    sample_type: int | None
    sample_location: int | None
    sensor_status: int | None
    context_follows: bool

    @property
    def user_facing_time(self) -> datetime | None:
        """Base time plus time offset (GLS 3.1.1.3), naive as the meter sent it."""
        if self.base_time.when is None:
            return None
        return self.base_time.when + timedelta(minutes=self.time_offset_min or 0)

    @property
    def is_control_solution(self) -> bool:
        return (self.sample_type == _CONTROL_TYPE
                or self.sample_location == _CONTROL_LOCATION)


def decode_glucose_measurement(data: bytes) -> GlucoseMeasurement:
    """Decode Glucose Measurement 0x2A18 (GLS 3.1): flags, seq, base time, optional fields."""
    rd = Reader(data, "Glucose Measurement")
    flags = rd.u8("flags")
    sequence = rd.u16("sequence number")
    base_time = rd.date_time("base time")
    offset = rd.s16("time offset") if flags & 0x01 else None
    concentration, sample_type, location = None, None, None
    if flags & 0x02:
        concentration = rd.sfloat("glucose concentration")
        type_location = rd.u8("type-sample location")
        sample_type, location = type_location & 0x0F, type_location >> 4
    status = rd.u16("sensor status annunciation") if flags & 0x08 else None
    return GlucoseMeasurement(
        sequence=sequence, base_time=base_time, time_offset_min=offset,
        concentration=concentration, unit="mol/L" if flags & 0x04 else "kg/L",
        sample_type=sample_type, sample_location=location, sensor_status=status,
        context_follows=bool(flags & 0x10))


def _glucose_flags(m: GlucoseMeasurement) -> tuple[str, ...]:
    flags: list[str] = [m.base_time.flag] if m.base_time.flag else []
    flags += bit_flags(m.sensor_status or 0, SENSOR_STATUS)
    if m.is_control_solution:
        flags += ["control_solution", "non_patient_data"]
    if m.concentration is None:
        flags.append("value_absent")
    return tuple(flags)


def _glucose_extra(m: GlucoseMeasurement) -> dict[str, ExtraValue]:
    extra: dict[str, ExtraValue] = {"context_follows": m.context_follows}
    if m.sample_type is not None:
        extra["sample_type"] = describe(SAMPLE_TYPES, m.sample_type)
    if m.sample_location is not None:
        extra["sample_location"] = describe(SAMPLE_LOCATIONS, m.sample_location)
    if m.time_offset_min is not None:
        extra["time_offset_min"] = m.time_offset_min
    return extra


def glucose_observations(m: GlucoseMeasurement) -> list[Observation]:
    """The measurement as one glucose observation in mg/dL (kg/L x 1e5, mmol/L x 18.016)."""
    record = Record(device_time=m.user_facing_time, sequence=m.sequence,
                    flags=_glucose_flags(m), extra=_glucose_extra(m))
    factor = scale(_MGDL_PER_KG_L) if m.unit == "kg/L" else scale(str(_MGDL_PER_MOL_L))
    return [observe(Kind.GLUCOSE, m.concentration, m.unit, record, factor)]


@dataclass(frozen=True, slots=True)
class GlucoseContext:
    """One Glucose Measurement Context record (GLS 3.3), linked by sequence number."""

    sequence: int
    extended_flags: int | None = None
    carbohydrate_id: int | None = None
    carbohydrate_kg: MderNumber | None = None
    meal: int | None = None
    tester: int | None = None
    health: int | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_pct: int | None = None
    medication_id: int | None = None
    medication: MderNumber | None = None
    medication_unit: str | None = None  # "kg" or "L" (flag bit 5)
    hba1c_pct: MderNumber | None = None


def decode_glucose_context(data: bytes) -> GlucoseContext:
    """Decode Glucose Measurement Context 0x2A34 (GLS 3.3); fields follow in flag-bit order."""
    rd = Reader(data, "Glucose Measurement Context")
    flags = rd.u8("flags")
    sequence = rd.u16("sequence number")
    extended = rd.u8("extended flags") if flags & 0x80 else None
    carb_id, carb = ((rd.u8("carbohydrate id"), rd.sfloat("carbohydrate"))
                     if flags & 0x01 else (None, None))
    meal = rd.u8("meal") if flags & 0x02 else None
    tester_health = rd.u8("tester-health") if flags & 0x04 else None
    duration, intensity = ((rd.u16("exercise duration"), rd.u8("exercise intensity"))
                           if flags & 0x08 else (None, None))
    med_id, med = ((rd.u8("medication id"), rd.sfloat("medication"))
                   if flags & 0x10 else (None, None))
    hba1c = rd.sfloat("HbA1c") if flags & 0x40 else None
    return GlucoseContext(
        sequence=sequence, extended_flags=extended, carbohydrate_id=carb_id,
        carbohydrate_kg=carb, meal=meal,
        tester=None if tester_health is None else tester_health & 0x0F,
        health=None if tester_health is None else tester_health >> 4,
        exercise_duration_s=duration, exercise_intensity_pct=intensity, medication_id=med_id,
        medication=med, medication_unit=None if med is None else ("L" if flags & 0x20 else "kg"),
        hba1c_pct=hba1c)


def _context_extra(c: GlucoseContext) -> dict[str, ExtraValue]:
    extra: dict[str, ExtraValue] = {}
    if c.carbohydrate_id is not None and c.carbohydrate_kg is not None:
        extra["carbohydrate"] = describe(CARBOHYDRATES, c.carbohydrate_id)
        extra["carbohydrate_kg"] = c.carbohydrate_kg.value
    if c.tester is not None:
        extra["tester"] = describe(TESTERS, c.tester)
    if c.health is not None:
        extra["health"] = describe(HEALTH, c.health)
    if c.exercise_duration_s is not None:
        extra["exercise_duration_s"] = c.exercise_duration_s
        extra["exercise_intensity_pct"] = c.exercise_intensity_pct
    if c.medication_id is not None and c.medication is not None:
        extra["medication"] = describe(MEDICATIONS, c.medication_id)
        extra["medication_amount"] = c.medication.value
        extra["medication_unit"] = c.medication_unit
    return extra


def _context_flags(c: GlucoseContext) -> tuple[str, ...]:
    # The meal travels as a flag: flags reach the cloud, ``extra`` stays on the gateway.
    return () if c.meal is None else (f"meal_{describe(MEALS, c.meal)}",)


def glucose_context_observations(c: GlucoseContext) -> list[Observation]:
    """The context's own observation: HbA1c in %, when the meter reports one."""
    if c.hba1c_pct is None:
        return []
    record = Record(sequence=c.sequence, flags=_context_flags(c), extra=_context_extra(c))
    return [observe(Kind.HBA1C, c.hba1c_pct, "%", record)]


def merge_glucose_context(observations: Iterable[Observation],
                          contexts: Iterable[GlucoseContext]) -> list[Observation]:
    """Attach each context to the glucose observation with the same sequence number (GLS 3.3).

    Meal becomes a ``meal_<name>`` flag, the rest goes to ``extra``. Observations without a
    matching context are returned unchanged; contexts without a measurement are ignored.
    """
    by_sequence: Mapping[int, GlucoseContext] = {c.sequence: c for c in contexts}
    merged = []
    for obs in observations:
        ctx = by_sequence.get(obs.sequence) if obs.sequence is not None else None
        if ctx is None or obs.kind is not Kind.GLUCOSE:
            merged.append(obs)
            continue
        merged.append(replace(obs, flags=obs.flags + _context_flags(ctx),
                              extra={**obs.extra, **_context_extra(ctx)}))
    return merged


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    """Glucose Feature 0x2A51 (GLS 3.2): what the meter can detect."""

    raw: int
    features: tuple[str, ...]


def decode_glucose_feature(data: bytes) -> GlucoseFeature:
    """Decode Glucose Feature 0x2A51: a u16 bit field."""
    raw = Reader(data, "Glucose Feature").u16("features")
    return GlucoseFeature(raw, bit_flags(raw, FEATURES))
