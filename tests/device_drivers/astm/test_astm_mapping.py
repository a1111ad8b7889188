"""Test codes -> observations: conversions, unknown codes, special values, TOML tables."""

from __future__ import annotations

import tomllib
from datetime import datetime

import pytest

from device_drivers.astm import (
    GLUCOMETER_CODES,
    POC_ANALYZER_CODES,
    CodeTableError,
    ResultRecord,
    observation_from_result,
    observations_from_message,
    parse_record,
    table_from_mapping,
)
from vigie.contract import CANONICAL_UNIT, Kind, plausibility_problem


def _result(text: str) -> ResultRecord:
    record = parse_record(text)
    assert isinstance(record, ResultRecord)
    return record


@pytest.mark.parametrize(("code", "value", "unit", "kind", "expected"), [
    ("GLU", "101", "mg/dL", Kind.GLUCOSE, 101.0),
    ("GLU", "5.5", "mmol/L", Kind.GLUCOSE, 99.088),
    ("INR", "2.4", "", Kind.INR, 2.4),
    ("HBA1C", "7.1", "%", Kind.HBA1C, 7.1),
    ("HBA1C", "53", "mmol/mol", Kind.HBA1C, 7.00044),
    ("NTPROBNP", "450", "ng/L", Kind.NT_PROBNP, 450.0),
    ("CRP", "12", "mg/L", Kind.CRP, 12.0),
    ("CREA", "1.2", "mg/dL", Kind.CREATININE, 106.104),
    ("CREA", "90", "µmol/L", Kind.CREATININE, 90.0),
])
def test_conversions(code: str, value: str, unit: str, kind: Kind, expected: float) -> None:
    obs = observation_from_result(
        _result(f"R|4|^^^{code}|{value}|{unit}||N||F||||20240301101200"), POC_ANALYZER_CODES,
        "PAT-1")
    assert obs.kind is kind
    assert obs.value == pytest.approx(expected)
    assert obs.unit == CANONICAL_UNIT[kind]
    assert obs.original_value == float(value)
    assert obs.sequence == 4
    assert obs.patient_ref == "PAT-1"
    assert obs.device_time == datetime(2024, 3, 1, 10, 12)
    assert plausibility_problem(obs.kind, obs.value, obs.unit) is None


def test_unknown_code_is_kept() -> None:
    obs = observation_from_result(_result("R|1|^^^XYZ|12.5|U/L"), POC_ANALYZER_CODES)
    assert obs.kind is Kind.UNKNOWN
    assert obs.value == 12.5 and obs.unit == "U/L"
    assert obs.extra["test_code"] == "XYZ" and obs.extra["raw_value"] == "12.5"


def test_glucometer_family_does_not_know_inr() -> None:
    obs = observation_from_result(_result("R|1|^^^INR|2.0|"), GLUCOMETER_CODES)
    assert obs.kind is Kind.UNKNOWN


def test_unknown_unit_of_a_known_code_is_flagged_not_converted() -> None:
    obs = observation_from_result(_result("R|1|^^^GLU|5|g/L"), POC_ANALYZER_CODES)
    assert obs.kind is Kind.UNKNOWN
    assert "unknown_unit" in obs.flags and obs.extra["mapped_kind"] == "glucose"


@pytest.mark.parametrize(("raw", "flag"), [
    (">33.3", "above_measuring_range"), ("HI", "above_measuring_range"),
    ("<1.1", "below_measuring_range"), ("LO", "below_measuring_range"),
    ("ERR", "non_numeric"), ("", "no_value"),
])
def test_non_numeric_values(raw: str, flag: str) -> None:
    obs = observation_from_result(_result(f"R|1|^^^GLU|{raw}|mmol/L"), POC_ANALYZER_CODES)
    assert obs.kind is Kind.GLUCOSE
    assert obs.value is None and obs.original_value is None
    assert flag in obs.flags
    assert obs.extra["raw_value"] == raw


def test_flags_status_and_bad_time() -> None:
    obs = observation_from_result(_result("R|1|^^^GLU|250|mg/dL||H\\>||C||||2024999"),
                                  POC_ANALYZER_CODES)
    assert obs.flags == ("abnormal:H", "abnormal:>", "correction", "bad_device_time")
    assert obs.device_time is None


def test_message_carries_patient_and_specimen() -> None:
    observations, errors = observations_from_message([
        "H|\\^&", "P|1|PAT-1", "O|1|SPEC-1||^^^GLU", "R|1|^^^GLU|100|mg/dL",
        "P|2||LAB-2", "R|1|^^^GLU|110|mg/dL", "R|2|bad\x01", "L|1|N"], GLUCOMETER_CODES)
    assert [o.patient_ref for o in observations] == ["PAT-1", "LAB-2"]
    assert observations[0].extra["specimen_id"] == "SPEC-1"
    assert "specimen_id" not in observations[1].extra
    assert len(errors) == 1


def test_table_from_toml() -> None:
    doc = tomllib.loads("""
        [codes.GLUX]
        kind = "glucose"
        default_unit = "mmol/L"
        units = { "mmol/L" = 18.016 }
        [codes.A1C-IFCC]
        kind = "hba1c"
        units = { "mmol/mol" = [0.09148, 2.152] }
    """)
    table = table_from_mapping(doc, base=GLUCOMETER_CODES)
    obs = observation_from_result(_result("R|1|^^^glux|5|"), table)
    assert obs.kind is Kind.GLUCOSE and obs.value == pytest.approx(90.08)
    assert obs.original_unit == "mmol/L"
    assert "GLU" in table


@pytest.mark.parametrize("bad", [
    {"X": {"kind": "nope"}}, {"X": {"kind": "glucose", "units": {"mg/dL": "one"}}},
    {"X": {"kind": "glucose", "units": {"mg/dL": [1, 2, 3]}}}, {"X": 3},
    {"codes": 3}, {"X": {"kind": "glucose", "units": 1}},
])
def test_bad_tables(bad: dict[str, object]) -> None:
    with pytest.raises(CodeTableError):
        table_from_mapping(bad)
