"""Health Thermometer Service 1.0: Temperature Measurement 0x2A1C.

References: HTS 1.0 section 3.1 and GSS 'Temperature Measurement'. The temperature is a 32-bit
FLOAT in degrees Celsius or Fahrenheit (flag bit 0); the optional type byte follows the
optional time stamp (Temperature Type values of GSS 'Temperature Type', 0x2A1D).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Final

from device_drivers.ble._observe import Convert, ExtraValue, Record, describe, identity, observe
from device_drivers.ble.mder import MderNumber
from device_drivers.ble.reader import DateTimeValue, Reader
from vigie.contract import Kind, Observation

__all__ = ["TemperatureMeasurement", "decode_temperature_measurement",
           "temperature_observations"]

_WIDE_PRECISION: Final = 300
TEMPERATURE_TYPES: Final = {1: "armpit", 2: "body", 3: "ear", 4: "finger", 5: "gi_tract",
                            6: "mouth", 7: "rectum", 8: "toe", 9: "tympanum"}


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """One Temperature Measurement as sent."""

    fahrenheit: bool
    temperature: MderNumber
    time: DateTimeValue | None = None
    temperature_type: int | None = None

    @property
    def unit(self) -> str:
        return "[degF]" if self.fahrenheit else "Cel"


def decode_temperature_measurement(data: bytes) -> TemperatureMeasurement:
    """Decode Temperature Measurement 0x2A1C (HTS 3.1)."""
    rd = Reader(data, "Temperature Measurement")
    flags = rd.u8("flags")
    temperature = rd.float32("temperature")
    time = rd.date_time("time stamp") if flags & 0x02 else None
    kind = rd.u8("temperature type") if flags & 0x04 else None
    return TemperatureMeasurement(bool(flags & 0x01), temperature, time, kind)


def _fahrenheit_to_celsius(places: int) -> Convert:
    def convert(value: Decimal) -> Decimal:
        # (F - 32) * 5/9 does not terminate: keep two more places than the device sent. The
        # wide context lets any FLOAT (exponent -128..127) be quantized without overflow.
        with localcontext(prec=_WIDE_PRECISION):
            return ((value - 32) * 5 / 9).quantize(Decimal(1).scaleb(-places))

    return convert


def temperature_observations(m: TemperatureMeasurement) -> list[Observation]:
    """Body temperature in Cel (F converted, two decimals more than the device's precision)."""
    extra: dict[str, ExtraValue] = {}
    if m.temperature_type is not None:
        extra["temperature_type"] = describe(TEMPERATURE_TYPES, m.temperature_type)
    flags = (m.time.flag,) if m.time is not None and m.time.flag else ()
    record = Record(device_time=None if m.time is None else m.time.when, flags=flags,
                    extra=extra)
    places = max(0, -m.temperature.exponent) + 2
    convert = _fahrenheit_to_celsius(places) if m.fahrenheit else identity
    return [observe(Kind.BODY_TEMPERATURE, m.temperature, m.unit, record, convert)]
