"""Glucose Measurement 0x2A18, Context 0x2A34, Feature 0x2A51 against reference bytes."""

from __future__ import annotations

from datetime import datetime

import pytest

from device_drivers.ble import (
    decode_characteristic,
    decode_glucose_context,
    decode_glucose_feature,
    decode_glucose_measurement,
    merge_glucose_context,
)
from vigie.contract import Kind


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Nordic Android-BLE-Common-Library, GlucoseMeasurementDataCallbackTest: flags 0x1B (offset,
# concentration kg/L, status, context follows), seq 1, 2019-02-27 11:10:30, offset -5 min,
# concentration SFLOAT 30 (kg/L), type 2 / location 1 (0x12), status 0x0105.
NORDIC_GLUCOSE = h("1B 0100 E307021B0B0A1E FBFF 1E00 12 0501")


def test_nordic_glucose_vector() -> None:
    m = decode_glucose_measurement(NORDIC_GLUCOSE)
    assert m.sequence == 1
    assert m.time_offset_min == -5
    assert m.user_facing_time == datetime(2019, 2, 27, 11, 5, 30)
    assert (m.sample_type, m.sample_location, m.unit) == (2, 1, "kg/L")
    assert m.sensor_status == 261
    assert m.context_follows


def test_nordic_glucose_observation() -> None:
    (obs,) = decode_characteristic(0x2A18, NORDIC_GLUCOSE)
    assert obs.kind is Kind.GLUCOSE
    assert (obs.value, obs.unit) == (3_000_000.0, "mg/dL")
    assert (obs.original_value, obs.original_unit) == (30.0, "kg/L")
    assert obs.device_time == datetime(2019, 2, 27, 11, 5, 30)  # base time + offset
    assert obs.sequence == 1
    assert obs.flags == ("battery_low", "sample_size_insufficient", "temperature_too_low")
    assert obs.extra["sample_type"] == "capillary_plasma"
    assert obs.extra["sample_location"] == "finger"


def test_glucose_kg_per_litre_realistic() -> None:
    # Hand-built from GLS 3.1: 95 mg/dL = 0.00095 kg/L = SFLOAT 95e-5 (0xB05F), capillary
    # whole blood at the finger (0x11), seq 7, 2024-03-05 08:30:00, no offset.
    (obs,) = decode_characteristic("2a18", h("02 0700 E807030508 1E00 5FB0 11"))
    assert (obs.value, obs.original_value) == (95.0, 0.00095)
    assert obs.device_time == datetime(2024, 3, 5, 8, 30, 0)
    assert obs.flags == ()


def test_glucose_mol_per_litre() -> None:
    # 5.5 mmol/L = 0.0055 mol/L = SFLOAT 55e-4 (0xC037); flags 0x06 (concentration, mol/L).
    (obs,) = decode_characteristic("0x2A18", h("06 0200 E807030508 1E00 37C0 11"))
    assert obs.original_unit == "mol/L"
    assert obs.original_value == 0.0055
    assert obs.value == pytest.approx(99.088, abs=1e-9)
    assert obs.value == 99.088


@pytest.mark.parametrize("type_location", ["1A", "41", "4A"])
def test_control_solution_flagged(type_location: str) -> None:
    # Type 10 (low nibble) or location 4 (high nibble) = control solution (GLS 3.1.1.5).
    (obs,) = decode_characteristic(0x2A18, h(f"02 0300 E807030508 1E00 5FB0 {type_location}"))
    assert "control_solution" in obs.flags
    assert "non_patient_data" in obs.flags


def test_glucose_without_concentration_and_unknown_time() -> None:
    (obs,) = decode_characteristic(0x2A18, h("08 0400 00000000000000 4000"))  # bit 6
    assert obs.value is None
    assert obs.device_time is None
    assert obs.flags == ("time_unknown", "result_too_low", "value_absent")


def test_glucose_special_value() -> None:
    (obs,) = decode_characteristic(0x2A18, h("02 0500 E807030508 1E00 FF07 11"))
    assert obs.value is None
    assert obs.original_value is None
    assert obs.flags[0] == "nan"


def test_glucose_offset_crosses_midnight() -> None:
    m = decode_glucose_measurement(h("01 0100 E80701010005 00 1E00"))
    assert m.user_facing_time == datetime(2024, 1, 1, 0, 35)
    m = decode_glucose_measurement(h("01 0100 E80701010005 00 C4FF"))  # -60 minutes
    assert m.user_facing_time == datetime(2023, 12, 31, 23, 5)


# Layout of Nordic's GlucoseMeasurementContextDataCallbackTest (flags 0xFF, extended flags
# 0xB3 right after the sequence, dinner, casual meal, HCP / minor issues 0x12, 60 s exercise at
# 50 %, long-acting insulin); the SFLOATs are ours: carbohydrate 100 (0x0064), medication
# 1.23 L (0xE07B), HbA1c 34.5 % (0xF159).
NORDIC_CONTEXT = h("FF 0000 B3 03 6400 04 12 3C00 32 04 7BE0 59F1")


def test_glucose_context_full() -> None:
    c = decode_glucose_context(NORDIC_CONTEXT)
    assert (c.sequence, c.extended_flags, c.carbohydrate_id, c.meal) == (0, 0xB3, 3, 4)
    assert (c.tester, c.health) == (2, 1)
    assert (c.exercise_duration_s, c.exercise_intensity_pct) == (60, 50)
    assert (c.medication_id, c.medication_unit) == (4, "L")
    assert c.medication is not None and c.medication.value == 1.23
    assert c.carbohydrate_kg is not None and c.carbohydrate_kg.value == 100.0
    assert c.hba1c_pct is not None and c.hba1c_pct.value == 34.5


def test_glucose_context_empty() -> None:
    c = decode_glucose_context(h("00 0100"))
    assert c.sequence == 1
    assert c.meal is None and c.hba1c_pct is None
    assert decode_characteristic(0x2A34, h("00 0100")) == []


def test_glucose_context_hba1c_observation() -> None:
    (obs,) = decode_characteristic(0x2A34, NORDIC_CONTEXT)
    assert (obs.kind, obs.value, obs.unit, obs.sequence) == (Kind.HBA1C, 34.5, "%", 0)
    assert obs.flags == ("meal_casual",)


def test_merge_context_by_sequence() -> None:
    measurement = decode_characteristic(0x2A18, h("12 0900 E807030508 1E00 5FB0 11"))
    other = decode_characteristic(0x2A18, h("02 0A00 E807030508 1E00 5FB0 11"))
    context = decode_glucose_context(h("06 0900 02 11"))  # postprandial, self, minor issues
    merged = merge_glucose_context(measurement + other, [context])
    assert merged[0].flags == ("meal_postprandial",)
    assert merged[0].extra["tester"] == "self"
    assert merged[0].extra["health"] == "minor_health_issues"
    assert merged[1] == other[0]


def test_glucose_feature() -> None:
    # GLS 3.2: bits 0 (low battery), 1 (malfunction), 10 (multiple bond) -> 0x0403.
    feature = decode_glucose_feature(h("0304"))
    assert feature.raw == 0x0403
    assert feature.features == ("low_battery_detection", "sensor_malfunction_detection",
                                "multiple_bond")
