"""Bluetooth SIG health-profile codecs (sans-I/O): bytes in, observations out.

Supported characteristics (the UUID is the 16-bit assigned number):

======  ==============================  =============================================
UUID    characteristic                  result
======  ==============================  =============================================
0x2A18  Glucose Measurement             glucose (mg/dL), control solution flagged
0x2A34  Glucose Measurement Context     HbA1c (%); ``merge_glucose_context`` for meals
0x2A51  Glucose Feature                 ``GlucoseFeature``
0x2A52  Record Access Control Point     requests encoded, responses decoded
0x2A9D  Weight Measurement              weight (kg), BMI/height in ``extra``
0x2A9E  Weight Scale Feature            ``WeightScaleFeature``
0x2A35  Blood Pressure Measurement      bp_systolic/diastolic/mean (mm[Hg]), heart_rate
0x2A36  Intermediate Cuff Pressure      ``Kind.UNKNOWN``, flagged non-patient data
0x2A5E  PLX Spot-Check Measurement      spo2 (%), heart_rate (/min)
0x2A5F  PLX Continuous Measurement      spo2 (%), heart_rate (/min)
0x2A1C  Temperature Measurement         body_temperature (Cel)
0x2A19  Battery Level                   battery_level (%)
0x2A29, 0x2A24, 0x2A25, 0x2A26          Device Information strings
0x2A08  Date Time                       naive ``datetime`` or a ``time_unknown`` flag
======  ==============================  =============================================

Nothing here does I/O: the gateway's bleak/bumble code hands the bytes of a notification,
indication or read to ``decode_characteristic`` and publishes what comes back.
"""

from __future__ import annotations

from device_drivers.ble.blood_pressure import (
    BloodPressureMeasurement,
    decode_blood_pressure_measurement,
    decode_intermediate_cuff_pressure,
)
from device_drivers.ble.characteristics import (
    characteristic_name,
    decode_characteristic,
    describe_characteristic,
    normalize_uuid,
)
from device_drivers.ble.device_info import decode_battery_level, decode_utf8_string
from device_drivers.ble.errors import (
    BleDecodeError,
    InvalidRequest,
    MalformedPayload,
    TruncatedPayload,
    UnknownCharacteristic,
)
from device_drivers.ble.glucose import (
    GlucoseContext,
    GlucoseFeature,
    GlucoseMeasurement,
    decode_glucose_context,
    decode_glucose_feature,
    decode_glucose_measurement,
    merge_glucose_context,
)
from device_drivers.ble.mder import MderNumber, decode_float, decode_sfloat
from device_drivers.ble.pulse_oximeter import (
    PlxContinuous,
    PlxSpotCheck,
    decode_plx_continuous,
    decode_plx_spot_check,
)
from device_drivers.ble.racp import (
    RacpFilterType,
    RacpNumberOfRecords,
    RacpOpcode,
    RacpOperator,
    RacpResponseCode,
    RacpResult,
    decode_racp_response,
    encode_racp_request,
    request_abort,
    request_delete_all,
    request_number_of_records,
    request_records,
    request_records_from,
)
from device_drivers.ble.reader import DateTimeValue, date_time_from_bytes
from device_drivers.ble.thermometer import TemperatureMeasurement, decode_temperature_measurement
from device_drivers.ble.weight import (
    WeightMeasurement,
    WeightScaleFeature,
    decode_weight_measurement,
    decode_weight_scale_feature,
)

__all__ = [
    "BleDecodeError",
    "BloodPressureMeasurement",
    "DateTimeValue",
    "GlucoseContext",
    "GlucoseFeature",
    "GlucoseMeasurement",
    "InvalidRequest",
    "MalformedPayload",
    "MderNumber",
    "PlxContinuous",
    "PlxSpotCheck",
    "RacpFilterType",
    "RacpNumberOfRecords",
    "RacpOpcode",
    "RacpOperator",
    "RacpResponseCode",
    "RacpResult",
    "TemperatureMeasurement",
    "TruncatedPayload",
    "UnknownCharacteristic",
    "WeightMeasurement",
    "WeightScaleFeature",
    "characteristic_name",
    "date_time_from_bytes",
    "decode_battery_level",
    "decode_blood_pressure_measurement",
    "decode_characteristic",
    "decode_float",
    "decode_glucose_context",
    "decode_glucose_feature",
    "decode_glucose_measurement",
    "decode_intermediate_cuff_pressure",
    "decode_plx_continuous",
    "decode_plx_spot_check",
    "decode_racp_response",
    "decode_sfloat",
    "decode_temperature_measurement",
    "decode_utf8_string",
    "decode_weight_measurement",
    "decode_weight_scale_feature",
    "describe_characteristic",
    "encode_racp_request",
    "merge_glucose_context",
    "normalize_uuid",
    "request_abort",
    "request_delete_all",
    "request_number_of_records",
    "request_records",
    "request_records_from",
]
