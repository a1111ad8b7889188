"""Simulated Bluetooth SIG health peripherals: spec-derived encoders (``encoders``)."""

from __future__ import annotations

from firmware_sim.ble.encoders import (
    UNKNOWN_TIME,
    Number,
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
    float_bytes,
    sfloat_bytes,
)

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
