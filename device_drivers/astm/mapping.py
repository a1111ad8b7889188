"""From E1394 result records to ``vigie.contract.Observation``.

A *code table* maps a test code (local code of the universal test ID, E1394 §10.1.3,
or a LOINC code sent as universal id) to a ``Kind`` and the unit conversions that reach
the kind's canonical unit. Tables are plain data and load from a TOML-shaped dict::

    [codes.GLU]
    kind = "glucose"
    default_unit = "mg/dL"          # assumed when the units field (§10.1.5) is empty
    units = { "mg/dL" = 1.0, "mmol/L" = 18.016 }
    [codes.A1C]
    kind = "hba1c"
    units = { "%" = 1.0, "mmol/mol" = [0.09148, 2.152] }   # scale, offset

Unknown codes and unknown units are never dropped: they become ``Kind.UNKNOWN`` with the
code and the raw value in ``extra``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from device_drivers.astm.errors import CodeTableError, RecordError
from device_drivers.astm.records import (
    Delimiters,
    HeaderRecord,
    OrderRecord,
    PatientRecord,
    ResultRecord,
    parse_record,
    parse_timestamp,
)
from vigie.contract import CANONICAL_UNIT, MGDL_PER_MMOLL, Kind, Observation

__all__ = [
    "FAMILIES",
    "GLUCOMETER_CODES",
    "POC_ANALYZER_CODES",
    "CodeTable",
    "TestCode",
    "UnitConversion",
    "normalize_unit",
    "observation_from_result",
    "observations_from_message",
    "table_from_mapping",
]

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ABOVE = {"HI", "HIGH", "H"}
_BELOW = {"LO", "LOW", "L"}
_STATUS_FLAGS = {"C": "correction", "P": "preliminary", "X": "cannot_be_done",
                 "I": "in_progress", "Q": "qc_result"}


@dataclass(frozen=True, slots=True)
class UnitConversion:
    """``canonical = scale * value + offset``."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, value: float) -> float:
        return round(self.scale * value + self.offset, 6)


@dataclass(frozen=True, slots=True)
class TestCode:
    """What a test code means: its kind, accepted units (normalized) and default unit."""

    kind: Kind
    units: Mapping[str, UnitConversion] = field(default_factory=dict)
    default_unit: str | None = None

    def conversion(self, unit: str) -> UnitConversion | None:
        """Conversion for a unit as sent; the empty unit falls back to ``default_unit``."""
        key = normalize_unit(unit or self.default_unit or "")
        return self.units.get(key)


CodeTable = Mapping[str, TestCode]


def normalize_unit(unit: str) -> str:
    """Case-insensitive UCUM-ish key: ``µmol/L`` and ``umol/l`` are the same unit."""
    return unit.strip().replace("µ", "u").replace("μ", "u").lower()


def _code(kind: Kind, units: Mapping[str, float | tuple[float, float]],
          default: str | None = None) -> TestCode:
    table = {normalize_unit(u): (UnitConversion(*c) if isinstance(c, tuple)
                                 else UnitConversion(c)) for u, c in units.items()}
    return TestCode(kind, table, default or CANONICAL_UNIT[kind])


_GLUCOSE = _code(Kind.GLUCOSE, {"mg/dL": 1.0, "mmol/L": MGDL_PER_MMOLL})
_GLUCOSE_MOLES = _code(Kind.GLUCOSE, {"mg/dL": 1.0, "mmol/L": MGDL_PER_MMOLL}, "mmol/L")
_INR = _code(Kind.INR, {"": 1.0, "{INR}": 1.0, "INR": 1.0, "ratio": 1.0})
_HBA1C = _code(Kind.HBA1C, {"%": 1.0, "mmol/mol": (0.09148, 2.152)})  # IFCC-NGSP master eq.
_HBA1C_IFCC = _code(Kind.HBA1C, {"%": 1.0, "mmol/mol": (0.09148, 2.152)}, "mmol/mol")
_NTPROBNP = _code(Kind.NT_PROBNP, {"pg/mL": 1.0, "ng/L": 1.0})
_CRP = _code(Kind.CRP, {"mg/L": 1.0, "mg/dL": 10.0})
_CREATININE = _code(Kind.CREATININE, {"umol/L": 1.0, "mg/dL": 88.42})

GLUCOMETER_CODES: CodeTable = {
    "GLU": _GLUCOSE, "GLUC": _GLUCOSE, "GLUCOSE": _GLUCOSE, "BG": _GLUCOSE,
    "41653-7": _GLUCOSE, "2339-0": _GLUCOSE, "2345-7": _GLUCOSE, "14743-9": _GLUCOSE_MOLES,
}

POC_ANALYZER_CODES: CodeTable = {
    **GLUCOMETER_CODES,
    "INR": _INR, "PT-INR": _INR, "PTINR": _INR, "34714-6": _INR, "6301-6": _INR,
    "HBA1C": _HBA1C, "A1C": _HBA1C, "4548-4": _HBA1C, "59261-8": _HBA1C_IFCC,
    "NTPROBNP": _NTPROBNP, "NT-PROBNP": _NTPROBNP, "33762-6": _NTPROBNP,
    "CRP": _CRP, "1988-5": _CRP,
    "CREA": _CREATININE, "CRE": _CREATININE, "CREAT": _CREATININE, "2160-0": _CREATININE,
    "14682-9": _CREATININE,
}

FAMILIES: Mapping[str, CodeTable] = {"glucometer": GLUCOMETER_CODES,
                                     "poc_analyzer": POC_ANALYZER_CODES}


def _conversion_from(unit: str, spec: Any) -> UnitConversion:
    if isinstance(spec, bool) or not isinstance(spec, int | float | list | tuple):
        raise CodeTableError(f"unit {unit!r}: give a factor or [scale, offset], got {spec!r}")
    if isinstance(spec, list | tuple):
        if len(spec) != 2 or not all(isinstance(x, int | float) for x in spec):
            raise CodeTableError(f"unit {unit!r}: [scale, offset] expected, got {spec!r}")
        return UnitConversion(float(spec[0]), float(spec[1]))
    return UnitConversion(float(spec))


def _test_code_from(code: str, spec: Any) -> TestCode:
    if not isinstance(spec, Mapping):
        raise CodeTableError(f"code {code!r}: a table with 'kind' and 'units' expected")
    try:
        kind = Kind(str(spec.get("kind")))
    except ValueError as exc:
        raise CodeTableError(f"code {code!r}: unknown kind {spec.get('kind')!r}") from exc
    units = spec.get("units", {CANONICAL_UNIT[kind]: 1.0})
    if not isinstance(units, Mapping):
        raise CodeTableError(f"code {code!r}: 'units' must be a table")
    default = spec.get("default_unit", CANONICAL_UNIT[kind])
    if not isinstance(default, str):
        raise CodeTableError(f"code {code!r}: 'default_unit' must be a string")
    table = {normalize_unit(u): _conversion_from(u, c) for u, c in units.items()}
    return TestCode(kind, table, default)


def table_from_mapping(data: Mapping[str, Any], base: CodeTable | None = None) -> CodeTable:
    """Build a code table from TOML-shaped data (``{code: {kind, units, default_unit}}``).

    ``data`` may also be the whole document with a ``codes`` table; entries override
    ``base`` (e.g. a family default). Raises ``CodeTableError``.
    """
    codes = data.get("codes", data)
    if not isinstance(codes, Mapping):
        raise CodeTableError("'codes' must be a table")
    table = dict(base or {})
    for code, spec in codes.items():
        table[str(code).upper()] = _test_code_from(str(code), spec)
    return table


# ------------------------------------------------------------------------ conversion


def _parse_value(raw: str) -> tuple[float | None, tuple[str, ...]]:
    """Numeric value of field §10.1.4, or None and why (``>33.3``, ``HI``...)."""
    text = raw.strip()
    if _NUMBER.match(text.replace(",", ".", 1) if "." not in text else text):
        return float(text.replace(",", ".")), ()
    if text.startswith(">") or text.upper() in _ABOVE:
        return None, ("above_measuring_range",)
    if text.startswith("<") or text.upper() in _BELOW:
        return None, ("below_measuring_range",)
    return None, ("non_numeric",) if text else ("no_value",)


def _result_flags(result: ResultRecord) -> tuple[str, ...]:
    flags = tuple(f"abnormal:{f}" for f in result.abnormal_flags)
    status = _STATUS_FLAGS.get(result.status.strip().upper())
    return flags + ((status,) if status else ())


def _device_time(result: ResultRecord) -> tuple[datetime | None, tuple[str, ...]]:
    try:
        return parse_timestamp(result.completed), ()
    except RecordError:
        return None, ("bad_device_time",)


def _extra(result: ResultRecord, code: str) -> dict[str, str | int | float | bool | None]:
    extra: dict[str, str | int | float | bool | None] = {
        "test_code": code, "raw_value": result.value, "result_status": result.status}
    if result.reference_range:
        extra["reference_range"] = result.reference_range
    if result.completed:
        extra["completed"] = result.completed
    return extra


def observation_from_result(result: ResultRecord, table: CodeTable,
                            patient_ref: str | None = None,
                            specimen_id: str | None = None) -> Observation:
    """One result record -> one observation; never raises on device data."""
    code = result.test.code
    spec = table.get(code.upper())
    value, value_flags = _parse_value(result.value)
    when, time_flags = _device_time(result)
    extra = _extra(result, code)
    if specimen_id:
        extra["specimen_id"] = specimen_id
    flags = value_flags + _result_flags(result) + time_flags
    conversion = spec.conversion(result.units) if spec else None
    if spec is None or conversion is None:
        if spec is not None:
            flags += ("unknown_unit",)
            extra["mapped_kind"] = str(spec.kind)
        return Observation(Kind.UNKNOWN, value, result.units, when, value, result.units or None,
                           result.sequence, None, patient_ref, flags, extra)
    unit = result.units or spec.default_unit
    converted = None if value is None else conversion.apply(value)
    return Observation(spec.kind, converted, CANONICAL_UNIT[spec.kind], when, value, unit,
                       result.sequence, None, patient_ref, flags, extra)


def observations_from_message(records: Sequence[str], table: CodeTable,
                              ) -> tuple[list[Observation], list[RecordError]]:
    """Observations of a message (P gives ``patient_ref``; O its specimen id in extra).

    A record that cannot be parsed is reported and skipped; its neighbours still count.
    Delimiters come from the header (§7.1.2); defaults when a capture has none.
    """
    observations: list[Observation] = []
    errors: list[RecordError] = []
    delimiters = Delimiters()
    patient: str | None = None
    specimen: str | None = None
    for text in records:
        try:
            record = parse_record(text, delimiters)
        except RecordError as exc:
            errors.append(exc)
            continue
        if isinstance(record, HeaderRecord):
            delimiters, patient, specimen = record.record.delimiters, None, None
        elif isinstance(record, PatientRecord):
            patient, specimen = record.patient_ref, None
        elif isinstance(record, OrderRecord):
            specimen = record.specimen_id or None
        elif isinstance(record, ResultRecord):
            observations.append(observation_from_result(record, table, patient, specimen))
    return observations, errors
