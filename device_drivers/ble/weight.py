"""Weight Scale Service 1.0: Weight Measurement 0x2A9D and Weight Scale Feature 0x2A9E.

References: Weight Scale Service 1.0 section 3.1/3.2 and GSS 'Weight Measurement'. Weight is a
u16 in 0.005 kg (SI) or 0.01 lb (imperial); 0xFFFF means "measurement unsuccessful" (WSS
3.1.1.2). User ID 255 is "unknown user". BMI is a u16 in 0.1 kg/m2; height a u16 in 0.001 m
(SI) or 0.1 in (imperial).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from device_drivers.ble._observe import ExtraValue, Record, bit_flags, observe, scale
from device_drivers.ble.reader import DateTimeValue, Reader
from vigie.contract import KG_PER_LB, Kind, Observation

__all__ = [
    "WeightMeasurement",
    "WeightScaleFeature",
    "decode_weight_measurement",
    "decode_weight_scale_feature",
    "weight_observations",
]

UNSUCCESSFUL: Final = 0xFFFF
UNKNOWN_USER: Final = 255
_KG_STEP: Final = Decimal("0.005")
_LB_STEP: Final = Decimal("0.01")
FEATURES: Final = {0: "time_stamp", 1: "multiple_users", 2: "bmi"}
# WSS 3.2: weight resolution code (bits 3-6) -> (kg, lb); height code (bits 7-9) -> (m, in).
WEIGHT_RESOLUTION: Final = {1: ("0.5", "1"), 2: ("0.2", "0.5"), 3: ("0.1", "0.2"),
                            4: ("0.05", "0.1"), 5: ("0.02", "0.05"), 6: ("0.01", "0.02"),
                            7: ("0.005", "0.01")}
HEIGHT_RESOLUTION: Final = {1: ("0.01", "1"), 2: ("0.005", "0.5"), 3: ("0.001", "0.1")}


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    """One Weight Measurement record as sent (raw integer fields kept)."""

    imperial: bool
    weight_raw: int
    time: DateTimeValue | None = None
    user_id: int | None = None
    bmi_raw: int | None = None
    height_raw: int | None = None

    @property
    def unit(self) -> str:
        return "[lb_av]" if self.imperial else "kg"

    @property
    def weight(self) -> Decimal | None:
        """Weight in ``unit``; None when the scale reports an unsuccessful measurement."""
        if self.weight_raw == UNSUCCESSFUL:
            return None
        return self.weight_raw * (_LB_STEP if self.imperial else _KG_STEP)


def decode_weight_measurement(data: bytes) -> WeightMeasurement:
    """Decode Weight Measurement 0x2A9D (WSS 3.1): flags, weight, optional fields."""
    rd = Reader(data, "Weight Measurement")
    flags = rd.u8("flags")
    weight = rd.u16("weight")
    time = rd.date_time("time stamp") if flags & 0x02 else None
    user = rd.u8("user id") if flags & 0x04 else None
    bmi, height = (rd.u16("BMI"), rd.u16("height")) if flags & 0x08 else (None, None)
    return WeightMeasurement(bool(flags & 0x01), weight, time, user, bmi, height)


def _weight_extra(m: WeightMeasurement) -> dict[str, ExtraValue]:
    extra: dict[str, ExtraValue] = {}
    if m.bmi_raw is not None:
        extra["bmi"] = float(m.bmi_raw * Decimal("0.1"))
    if m.height_raw is not None and m.imperial:
        extra["height_in"] = float(m.height_raw * Decimal("0.1"))
    elif m.height_raw is not None:
        extra["height_m"] = float(m.height_raw * Decimal("0.001"))
    return extra


def _weight_flags(m: WeightMeasurement) -> tuple[str, ...]:
    flags = [m.time.flag] if m.time is not None and m.time.flag else []
    if m.user_id == UNKNOWN_USER:
        flags.append("user_unknown")
    if m.weight_raw == UNSUCCESSFUL:
        flags.append("measurement_unsuccessful")
    return tuple(flags)


def weight_observations(m: WeightMeasurement) -> list[Observation]:
    """The record as one weight observation in kg (lb x 0.45359237)."""
    record = Record(
        device_time=None if m.time is None else m.time.when,
        user_index=None if m.user_id == UNKNOWN_USER else m.user_id,
        flags=_weight_flags(m), extra=_weight_extra(m))
    factor = scale(KG_PER_LB) if m.imperial else scale("1")
    return [observe(Kind.WEIGHT, m.weight, m.unit, record, factor)]


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    """Weight Scale Feature 0x2A9E (WSS 3.2). Resolutions are None when not specified."""

    raw: int
    features: tuple[str, ...]
    weight_resolution_kg: Decimal | None
    weight_resolution_lb: Decimal | None
    height_resolution_m: Decimal | None
    height_resolution_in: Decimal | None


def decode_weight_scale_feature(data: bytes) -> WeightScaleFeature:
    """Decode Weight Scale Feature 0x2A9E: u32 bit field with two resolution codes."""
    raw = Reader(data, "Weight Scale Feature").uint(4, "features")
    weight = WEIGHT_RESOLUTION.get(raw >> 3 & 0x0F)
    height = HEIGHT_RESOLUTION.get(raw >> 7 & 0x07)
    return WeightScaleFeature(
        raw=raw, features=bit_flags(raw, FEATURES),
        weight_resolution_kg=None if weight is None else Decimal(weight[0]),
        weight_resolution_lb=None if weight is None else Decimal(weight[1]),
        height_resolution_m=None if height is None else Decimal(height[0]),
        height_resolution_in=None if height is None else Decimal(height[1]))
