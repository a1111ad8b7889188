"""Shared helpers turning decoded fields into ``vigie.contract.Observation`` values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from device_drivers.ble.mder import MderNumber
from vigie.contract import CANONICAL_UNIT, Kind, Observation

ExtraValue = str | int | float | bool | None
Convert = Callable[[Decimal], Decimal]


def identity(value: Decimal) -> Decimal:
    return value


def scale(factor: str | float) -> Convert:
    """A conversion multiplying by ``factor``, computed exactly in decimal."""
    exact = Decimal(repr(factor)) if isinstance(factor, float) else Decimal(factor)

    def convert(value: Decimal) -> Decimal:
        return value * exact

    return convert


def bit_flags(value: int, names: Mapping[int, str]) -> tuple[str, ...]:
    """Readable names of the set bits of ``value`` (bit number -> name), in bit order."""
    return tuple(name for bit, name in sorted(names.items()) if value >> bit & 1)


def describe(table: Mapping[int, str], code: int) -> str:
    """Name of an enumerated code, or 'reserved_<n>' for a value the spec reserves."""
    return table.get(code, f"reserved_{code}")


@dataclass(frozen=True, slots=True)
class Record:
    """What all observations decoded from one characteristic value share."""

    device_time: datetime | None = None
    sequence: int | None = None
    user_index: int | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)


def observe(kind: Kind, number: MderNumber | Decimal | None, original_unit: str,
            record: Record, convert: Convert = identity,
            more_flags: tuple[str, ...] = (), unit: str | None = None) -> Observation:
    """One observation in the canonical unit of ``kind``, the device's value kept beside.

    A special SFLOAT/FLOAT value (or ``None``: field absent) gives ``value=None`` and its flag.
    ``unit`` overrides the canonical unit (only for ``Kind.UNKNOWN``, which has none).
    """
    exact = number.decimal if isinstance(number, MderNumber) else number
    flags = record.flags + more_flags
    if isinstance(number, MderNumber) and number.special is not None:
        flags = (number.special, *flags)
    canonical = None if exact is None else float(convert(exact))
    return Observation(
        kind=kind, value=canonical, unit=unit or CANONICAL_UNIT[kind],
        device_time=record.device_time,
        original_value=None if exact is None else float(exact), original_unit=original_unit,
        sequence=record.sequence, user_index=record.user_index, flags=flags,
        extra=dict(record.extra))
