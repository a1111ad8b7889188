"""E1394 records: delimiters from the header, escapes, repeats, components, typed records."""

from __future__ import annotations

from datetime import datetime

import pytest

from device_drivers.astm import Delimiters, RecordError, parse_message, parse_record
from device_drivers.astm.records import (
    CommentRecord,
    HeaderRecord,
    ManufacturerRecord,
    OrderRecord,
    PatientRecord,
    QueryRecord,
    Record,
    ResultRecord,
    TerminatorRecord,
    parse_timestamp,
)


def test_default_delimiters_from_header() -> None:
    header = parse_record("H|\\^&|||Sender^Model^1.2|||||||P|LIS2-A2|20240301101500")
    assert isinstance(header, HeaderRecord)
    assert header.record.delimiters == Delimiters()
    assert header.sender == ("Sender", "Model", "1.2")
    assert header.processing_id == "P"
    assert header.version == "LIS2-A2"
    assert header.timestamp == "20240301101500"


def test_custom_delimiters_and_escape_apply_to_the_whole_message() -> None:
    # §5.4: H!@#$ - field '!', repeat '@', component '#', escape '$'
    records = parse_message([
        "H!@#$!!!Lab#Box",
        "P!1!!ID$F$42",
        "R!1!###GLU!5$S$5!mmol/L!3.9-6.1!H@>!!F!!!!20240301",
        "L!1!N",
    ])
    header, patient, result, term = records
    assert isinstance(header, HeaderRecord)
    assert header.record.delimiters == Delimiters("!", "@", "#", "$")
    assert isinstance(patient, PatientRecord) and patient.patient_ref == "ID!42"
    assert isinstance(result, ResultRecord)
    assert result.test.code == "GLU"
    assert result.value == "5#5"
    assert result.abnormal_flags == ("H", ">")
    assert result.status == "F"
    assert isinstance(term, TerminatorRecord) and term.code == "N"


@pytest.mark.parametrize(("raw", "text"), [
    ("a&F&b", "a|b"), ("a&S&b", "a^b"), ("a&R&b", "a\\b"), ("a&E&b", "a&b"),
    ("&X41&&X4243&", "ABC"), ("&H&bold&N&", "&H&bold&N&"), ("&X4&", "&X4&"),
])
def test_escape_sequences(raw: str, text: str) -> None:
    assert Delimiters().unescape(raw) == text


def test_repeats_and_components() -> None:
    order = parse_record("O|1|SPEC-1||^^^GLU^Glucose\\^^^HBA1C|R||20240301093000")
    assert isinstance(order, OrderRecord)
    assert [t.code for t in order.tests] == ["GLU", "HBA1C"]
    assert order.tests[0].local == ("GLU", "Glucose")
    assert order.collected == "20240301093000"
    assert order.record.repeats(5)[1] == ("", "", "", "HBA1C")


def test_universal_id_falls_back_to_loinc() -> None:
    result = parse_record("R|3|2345-7^Glucose^LN|101|mg/dL")
    assert isinstance(result, ResultRecord) and result.test.code == "2345-7"


def test_result_fields_follow_section_10() -> None:
    result = parse_record("R|2|^^^INR|2.4|INR|2.0-3.0|H|N|F||OP7|20240301100000|"
                          "20240301101200|POC-1")
    assert isinstance(result, ResultRecord)
    assert (result.sequence, result.value, result.units, result.reference_range) == (
        2, "2.4", "INR", "2.0-3.0")
    assert (result.nature, result.operator, result.started, result.completed,
            result.instrument) == ("N", "OP7", "20240301100000", "20240301101200", "POC-1")


def test_other_record_types() -> None:
    comment = parse_record("C|1|I|Sample^haemolysed|G")
    query = parse_record("Q|1|^SPEC-9||^^^ALL||20240301|20240302|||||O")
    manufacturer = parse_record("M|1|VENDOR|x|y")
    scientific = parse_record("S|1|x")
    assert isinstance(comment, CommentRecord) and comment.text == "Sample haemolysed"
    assert isinstance(query, QueryRecord) and query.starting_range == ("", "SPEC-9")
    assert query.status_codes == "O"
    assert isinstance(manufacturer, ManufacturerRecord)
    assert manufacturer.record.raw(3) == "VENDOR"
    assert type(scientific) is Record and scientific.type == "S"


@pytest.mark.parametrize("bad", ["H|||&|", "H|\\^", "HA\\^&A", "", "R|1|\x07"])
def test_bad_records_raise(bad: str) -> None:
    with pytest.raises(RecordError):
        parse_record(bad)


def test_timestamps() -> None:
    assert parse_timestamp("20240301101502") == datetime(2024, 3, 1, 10, 15, 2)
    assert parse_timestamp("202403011015") == datetime(2024, 3, 1, 10, 15)
    assert parse_timestamp("20240301") == datetime(2024, 3, 1)
    assert parse_timestamp("") is None
    for bad in ("20241301101502", "2024030110", "2024-03-01"):
        with pytest.raises(RecordError):
            parse_timestamp(bad)
