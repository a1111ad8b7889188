"""Dispatch by characteristic UUID: ``decode_characteristic`` and ``describe_characteristic``.

``decode_characteristic`` covers the characteristics that carry observations (measurements,
the HbA1c of a glucose context, battery level). ``describe_characteristic`` covers the rest
(features, Date Time, Device Information strings, RACP responses) as plain JSON-ready dicts,
for tools such as ``vigie decode ble``.

UUIDs are accepted as ``0x2A18``, ``"2a18"``, ``"0x2A18"`` or the full 128-bit form built on
the Bluetooth Base UUID ``0000xxxx-0000-1000-8000-00805f9b34fb`` (Core v5.x Vol 3 Part B 2.5.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from device_drivers.ble import blood_pressure as bp
from device_drivers.ble import device_info, glucose, pulse_oximeter, racp, thermometer, weight
from device_drivers.ble.errors import UnknownCharacteristic
from device_drivers.ble.mder import MderNumber
from device_drivers.ble.reader import Reader
from vigie.contract import Observation

__all__ = ["CHARACTERISTIC_NAMES", "characteristic_name", "decode_characteristic",
           "describe_characteristic", "normalize_uuid"]

_BASE_UUID = re.compile(r"^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$")
_SHORT_UUID = re.compile(r"^(?:0x)?([0-9a-f]{4})$")

Decoder = Callable[[bytes], list[Observation]]

_OBSERVATION_DECODERS: Final[Mapping[int, Decoder]] = {
    0x2A18: lambda d: glucose.glucose_observations(glucose.decode_glucose_measurement(d)),
    0x2A34: lambda d: glucose.glucose_context_observations(glucose.decode_glucose_context(d)),
    0x2A9D: lambda d: weight.weight_observations(weight.decode_weight_measurement(d)),
    0x2A35: lambda d: bp.blood_pressure_observations(bp.decode_blood_pressure_measurement(d)),
    0x2A36: lambda d: bp.intermediate_cuff_pressure_observations(
        bp.decode_intermediate_cuff_pressure(d)),
    0x2A5E: lambda d: pulse_oximeter.plx_spot_check_observations(
        pulse_oximeter.decode_plx_spot_check(d)),
    0x2A5F: lambda d: pulse_oximeter.plx_continuous_observations(
        pulse_oximeter.decode_plx_continuous(d)),
    0x2A1C: lambda d: thermometer.temperature_observations(
        thermometer.decode_temperature_measurement(d)),
    0x2A19: lambda d: device_info.battery_level_observations(device_info.decode_battery_level(d)),
}

_DIS_STRINGS: Final = {0x2A29: "manufacturer_name", 0x2A24: "model_number",
                       0x2A25: "serial_number", 0x2A26: "firmware_revision"}

CHARACTERISTIC_NAMES: Final[Mapping[int, str]] = {
    0x2A08: "Date Time", 0x2A18: "Glucose Measurement", 0x2A19: "Battery Level",
    0x2A1C: "Temperature Measurement", 0x2A24: "Model Number String",
    0x2A25: "Serial Number String", 0x2A26: "Firmware Revision String",
    0x2A29: "Manufacturer Name String", 0x2A34: "Glucose Measurement Context",
    0x2A35: "Blood Pressure Measurement", 0x2A36: "Intermediate Cuff Pressure",
    0x2A51: "Glucose Feature", 0x2A52: "Record Access Control Point",
    0x2A5E: "PLX Spot-Check Measurement", 0x2A5F: "PLX Continuous Measurement",
    0x2A9D: "Weight Measurement", 0x2A9E: "Weight Scale Feature",
}


def normalize_uuid(uuid: str | int) -> int:
    """The 16-bit assigned number of ``uuid``; raises ``UnknownCharacteristic`` if it has none."""
    if isinstance(uuid, int) and not isinstance(uuid, bool):
        if 0 <= uuid <= 0xFFFF:
            return uuid
        raise UnknownCharacteristic(f"UUID {uuid:#x} is not a 16-bit assigned number", uuid=uuid)
    text = str(uuid).strip().lower()
    match = _SHORT_UUID.match(text) or _BASE_UUID.match(text)
    if match is None:
        raise UnknownCharacteristic(f"not a Bluetooth SIG UUID: {uuid!r}", uuid=uuid)
    return int(match.group(1), 16)


def characteristic_name(uuid: str | int) -> str:
    """Human name of a supported characteristic, e.g. 'Glucose Measurement'."""
    number = normalize_uuid(uuid)
    return CHARACTERISTIC_NAMES.get(number, f"0x{number:04X}")


def _label(number: int) -> str:
    name = CHARACTERISTIC_NAMES.get(number)
    return f"characteristic 0x{number:04X}" if name is None else f"{name} (0x{number:04X})"


def decode_characteristic(uuid: str | int, data: bytes) -> list[Observation]:
    """Decode one characteristic value into observations in canonical units.

    Raises ``UnknownCharacteristic`` for a UUID that carries no observation and
    ``MalformedPayload``/``TruncatedPayload`` for bytes that break the spec.
    """
    number = normalize_uuid(uuid)
    decoder = _OBSERVATION_DECODERS.get(number)
    if decoder is None:
        raise UnknownCharacteristic(
            f"no observation decoder for {_label(number)}",
            uuid=uuid)
    return decoder(bytes(data))


def jsonable(value: Any) -> Any:
    """Plain JSON values for the typed results (dataclasses, enums, decimals, times)."""
    if isinstance(value, MderNumber):
        return value.value if value.special is None else value.special
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _date_time(data: bytes) -> dict[str, Any]:
    value = Reader(data, "Date Time").date_time("date time")
    return {"time": jsonable(value.when), "flags": [value.flag] if value.flag else []}


_DESCRIBERS: Final[Mapping[int, Callable[[bytes], Any]]] = {
    0x2A08: _date_time,
    0x2A34: glucose.decode_glucose_context,
    0x2A51: glucose.decode_glucose_feature,
    0x2A52: racp.decode_racp_response,
    0x2A9E: weight.decode_weight_scale_feature,
}


def describe_characteristic(uuid: str | int, data: bytes) -> dict[str, Any]:
    """Decode a non-observation characteristic into a JSON-ready dict (with its ``name``)."""
    number = normalize_uuid(uuid)
    name = characteristic_name(number)
    if number in _DIS_STRINGS:
        return {"name": name, _DIS_STRINGS[number]: device_info.decode_utf8_string(data, name)}
    describer = _DESCRIBERS.get(number)
    if describer is None:
        raise UnknownCharacteristic(f"no decoder for {_label(number)}", uuid=uuid)
    result = jsonable(describer(bytes(data)))
    if not isinstance(result, dict):  # pragma: no cover - every describer returns a record
        result = {"value": result}
    return {"name": name, **result}


