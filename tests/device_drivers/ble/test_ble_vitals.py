"""Weight 0x2A9D/0x2A9E, blood pressure 0x2A35/0x2A36, PLX 0x2A5E/0x2A5F, temperature 0x2A1C."""

from __future__ import annotations

from datetime import datetime

import pytest

from device_drivers.ble import decode_characteristic, decode_weight_scale_feature
from vigie.contract import Kind


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- Weight Scale (WSS 1.0 3.1): vectors hand-built from the field definitions. ---

def test_weight_si_full() -> None:
    # flags 0x0E: time, user 1, BMI 22.9 (229) and height 1.750 m (1750); 70.000 kg = 14000
    # steps of 0.005 kg (0x36B0).
    (obs,) = decode_characteristic(0x2A9D, h("0E B036 E80703050800 00 01 E500 D606"))
    assert (obs.kind, obs.value, obs.unit) == (Kind.WEIGHT, 70.0, "kg")
    assert (obs.original_value, obs.original_unit) == (70.0, "kg")
    assert obs.device_time == datetime(2024, 3, 5, 8, 0)
    assert obs.user_index == 1
    assert obs.extra == {"bmi": 22.9, "height_m": 1.75}


def test_weight_si_resolution() -> None:
    (obs,) = decode_characteristic(0x2A9D, h("00 FFFE"))  # 0xFEFF * 0.005 = 326.395 kg
    assert obs.value == 326.395


def test_weight_imperial() -> None:
    # 154.32 lb = 15432 steps of 0.01 lb (0x3C48); height 68.9 in (689 = 0x02B1).
    (obs,) = decode_characteristic(0x2A9D, h("09 483C E500 B102"))
    assert (obs.original_value, obs.original_unit) == (154.32, "[lb_av]")
    assert obs.value == 69.9983745384  # 154.32 x 0.45359237, exact in decimal
    assert obs.extra == {"bmi": 22.9, "height_in": 68.9}


def test_weight_unsuccessful_and_unknown_user() -> None:
    (obs,) = decode_characteristic(0x2A9D, h("04 FFFF FF"))
    assert obs.value is None
    assert obs.user_index is None
    assert obs.flags == ("user_unknown", "measurement_unsuccessful")


def test_weight_scale_feature() -> None:
    # WSS 3.2: time stamp + multiple users + BMI (0x7), weight resolution 7 (0.005 kg),
    # height resolution 3 (0.001 m): 0x7 | 7 << 3 | 3 << 7 = 0x1BF.
    feature = decode_weight_scale_feature(h("BF010000"))
    assert feature.features == ("time_stamp", "multiple_users", "bmi")
    assert str(feature.weight_resolution_kg) == "0.005"
    assert str(feature.weight_resolution_lb) == "0.01"
    assert str(feature.height_resolution_m) == "0.001"
    none = decode_weight_scale_feature(h("00000000"))
    assert none.weight_resolution_kg is None and none.height_resolution_in is None


# --- Blood Pressure (BLS 1.0 3.1/3.2): Nordic BloodPressureMeasurementDataCallbackTest. ---

NORDIC_BPM_FULL = h("1E 8A00 5800 7800 0000 04 11 14 29 3B 3C00 01 2700")
NORDIC_BPM_SOME = h("15BDF00B009FF03C001200")
NORDIC_BPM_MINIMAL = h("00BDF00B009FF0")


def test_bpm_full() -> None:
    obs = decode_characteristic("2A35", NORDIC_BPM_FULL)
    assert [(o.kind, o.value) for o in obs] == [
        (Kind.BP_SYSTOLIC, 138.0), (Kind.BP_DIASTOLIC, 88.0), (Kind.BP_MEAN, 120.0),
        (Kind.HEART_RATE, 60.0)]
    assert {o.unit for o in obs[:3]} == {"mm[Hg]"}
    assert obs[3].unit == "/min"
    # Year 0 in the time stamp: unknown time (GSS Date Time).
    assert obs[0].device_time is None
    assert obs[0].user_index == 1
    assert obs[0].flags == ("time_unknown", "body_movement", "cuff_too_loose",
                            "irregular_pulse", "improper_position")


def test_bpm_kpa() -> None:
    sys_, dia, mean, pulse = decode_characteristic(0x2A35, NORDIC_BPM_SOME)
    assert (sys_.original_value, sys_.original_unit) == (18.9, "kPa")
    assert sys_.value == 141.761718  # 18.9 x 7.50062
    assert dia.value == 82.50682
    assert mean.value == 119.259858
    assert pulse.value == 60.0
    assert sys_.user_index is None
    assert sys_.flags == ("cuff_too_loose", "pulse_rate_below_range")


def test_bpm_minimal_mmhg() -> None:
    obs = decode_characteristic(0x2A35, NORDIC_BPM_MINIMAL)
    assert [o.value for o in obs] == [18.9, 11.0, 15.9]
    assert all(o.flags == () and o.device_time is None for o in obs)


def test_bpm_special_values() -> None:
    # Mean arterial pressure not computed (NaN) and pulse NRes.
    obs = decode_characteristic(0x2A35, h("04 7800 5000 FF07 0008"))
    assert obs[2].value is None and obs[2].flags == ("nan",)
    assert obs[3].value is None and obs[3].flags == ("nres",)
    assert obs[0].value == 120.0


def test_intermediate_cuff_pressure_is_not_a_bp_reading() -> None:
    # BLS 3.2: current cuff pressure 152 mmHg, diastolic and MAP NaN, pulse 70.
    (obs,) = decode_characteristic(0x2A36, h("04 9800 FF07 FF07 4600"))
    assert obs.kind is Kind.UNKNOWN
    assert (obs.value, obs.unit) == (152.0, "mm[Hg]")
    assert "intermediate_cuff_pressure" in obs.flags
    assert "non_patient_data" in obs.flags
    assert obs.extra == {"quantity": "cuff_pressure", "pulse_rate": 70.0}


# --- Pulse oximeter (PLXS 1.0 3.1/3.2): hand-built. ---

def test_plx_spot_check_full() -> None:
    # flags 0x0F: time, status (validated, bit 7), device status (low perfusion, bit 5), PAI
    # 5.2 % (52e-1 = 0xF034); SpO2 97, PR 72.
    spo2, pr = decode_characteristic(
        0x2A5E, h("0F 6100 4800 E80703050800 00 8000 200000 34F0"))
    assert (spo2.kind, spo2.value, spo2.unit) == (Kind.SPO2, 97.0, "%")
    assert (pr.kind, pr.value, pr.unit) == (Kind.HEART_RATE, 72.0, "/min")
    assert spo2.device_time == datetime(2024, 3, 5, 8, 0)
    assert spo2.flags == ("validated", "low_perfusion")
    assert spo2.extra == {"pulse_amplitude_index": 5.2}


def test_plx_spot_check_clock_not_set_and_demo() -> None:
    spo2, _ = decode_characteristic(0x2A5E, h("13 6100 4800 E80703050800 00 0004"))
    assert spo2.device_time is None
    assert spo2.flags == ("device_clock_not_set", "demonstration", "non_patient_data")


def test_plx_continuous() -> None:
    # flags 0x1F: fast (96, 75) and slow (98, 70) pairs, status invalid (bit 15), device status
    # sensor disconnected (bit 15), PAI 1.0 (10e-1 = 0xF00A).
    spo2, pr = decode_characteristic(
        0x2A5F, h("1F 6100 4800 6000 4B00 6200 4600 0080 008000 0AF0"))
    assert (spo2.value, pr.value) == (97.0, 72.0)
    assert spo2.extra == {"spo2_fast": 96.0, "pulse_rate_fast": 75.0, "spo2_slow": 98.0,
                          "pulse_rate_slow": 70.0, "pulse_amplitude_index": 1.0}
    assert spo2.flags == ("invalid_measurement", "sensor_disconnected")
    assert spo2.device_time is None


# --- Health Thermometer (HTS 1.0 3.1). ---

def test_temperature_celsius_classic() -> None:
    # The classic HTS example value: 36.6 degC = FLOAT 366e-1 (0xFF00016E), no options.
    (obs,) = decode_characteristic(0x2A1C, h("00 6E0100FF"))
    assert (obs.kind, obs.value, obs.unit) == (Kind.BODY_TEMPERATURE, 36.6, "Cel")


def test_temperature_fahrenheit_time_type() -> None:
    # 98.6 degF (986e-1) with time stamp and type 6 (mouth).
    (obs,) = decode_characteristic(0x2A1C, h("07 DA0300FF E80703050800 00 06"))
    assert (obs.original_value, obs.original_unit) == (98.6, "[degF]")
    assert obs.value == 37.0
    assert obs.device_time == datetime(2024, 3, 5, 8, 0)
    assert obs.extra == {"temperature_type": "mouth"}


def test_temperature_fahrenheit_rounding() -> None:
    (obs,) = decode_characteristic(0x2A1C, h("01 E70300FF"))  # 99.9 degF
    assert obs.value == 37.722  # 37.7222... kept to 3 places


@pytest.mark.parametrize(("raw", "flag"), [("00 FFFF7F00", "nan"), ("00 FEFF7F00", "+inf"),
                                           ("00 02008000", "-inf"), ("00 00008000", "nres")])
def test_temperature_specials(raw: str, flag: str) -> None:
    (obs,) = decode_characteristic(0x2A1C, h(raw))
    assert (obs.value, obs.flags) == (None, (flag,))
