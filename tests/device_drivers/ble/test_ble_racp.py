"""Record Access Control Point 0x2A52: requests for every op code/operator/filter, responses."""

from __future__ import annotations

from datetime import datetime

import pytest

from device_drivers.ble import (
    InvalidRequest,
    MalformedPayload,
    RacpFilterType,
    RacpNumberOfRecords,
    RacpOpcode,
    RacpOperator,
    RacpResponseCode,
    RacpResult,
    TruncatedPayload,
    decode_racp_response,
    encode_racp_request,
    request_abort,
    request_delete_all,
    request_number_of_records,
    request_records,
    request_records_from,
)

SEQ = RacpFilterType.SEQUENCE_NUMBER
TIME = RacpFilterType.USER_FACING_TIME


def test_shortcuts() -> None:
    # GLS 4.9 procedures; "records >= N" is the incremental download every gateway uses.
    assert request_records() == bytes.fromhex("0101")
    assert request_records(RacpOperator.FIRST_RECORD) == bytes.fromhex("0105")
    assert request_records(RacpOperator.LAST_RECORD) == bytes.fromhex("0106")
    assert request_records_from(0x1234) == bytes.fromhex("0103013412")
    assert request_number_of_records() == bytes.fromhex("0401")
    assert request_delete_all() == bytes.fromhex("0201")
    assert request_abort() == bytes.fromhex("0300")


@pytest.mark.parametrize("opcode", [RacpOpcode.REPORT_STORED_RECORDS,
                                    RacpOpcode.DELETE_STORED_RECORDS,
                                    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS])
def test_every_operator_and_filter(opcode: RacpOpcode) -> None:
    op = bytes([opcode])
    t1, t2 = datetime(2024, 3, 5, 8, 0, 0), datetime(2024, 3, 6, 9, 30, 15)
    t1b, t2b = bytes.fromhex("E8070305080000"), bytes.fromhex("E807030609 1E0F")
    cases = {
        (RacpOperator.ALL_RECORDS, None, None, None): b"\x01",
        (RacpOperator.FIRST_RECORD, None, None, None): b"\x05",
        (RacpOperator.LAST_RECORD, None, None, None): b"\x06",
        (RacpOperator.LESS_THAN_OR_EQUAL, SEQ, None, 10): b"\x02\x01\x0a\x00",
        (RacpOperator.GREATER_THAN_OR_EQUAL, SEQ, 10, None): b"\x03\x01\x0a\x00",
        (RacpOperator.WITHIN_RANGE, SEQ, 10, 300): b"\x04\x01\x0a\x00\x2c\x01",
        (RacpOperator.LESS_THAN_OR_EQUAL, TIME, None, t2): b"\x02\x02" + t2b,
        (RacpOperator.GREATER_THAN_OR_EQUAL, TIME, t1, None): b"\x03\x02" + t1b,
        (RacpOperator.WITHIN_RANGE, TIME, t1, t2): b"\x04\x02" + t1b + t2b,
    }
    for (operator, ftype, low, high), tail in cases.items():
        assert encode_racp_request(opcode, operator, filter_type=ftype, low=low,
                                   high=high) == op + tail


@pytest.mark.parametrize(("opcode", "operator", "kwargs"), [
    (RacpOpcode.ABORT_OPERATION, RacpOperator.ALL_RECORDS, {}),
    (RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.NULL, {}),
    (RacpOpcode.RESPONSE_CODE, RacpOperator.NULL, {}),
    (RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOperator.NULL, {}),
    (RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS, {"filter_type": SEQ}),
    (RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL, {"low": 3}),
    (RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.WITHIN_RANGE,
     {"filter_type": SEQ, "low": 3}),
    (RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.LESS_THAN_OR_EQUAL,
     {"filter_type": SEQ, "high": 70000}),
    (RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.LESS_THAN_OR_EQUAL,
     {"filter_type": TIME, "high": 5}),
])
def test_invalid_requests(opcode: RacpOpcode, operator: RacpOperator,
                          kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        encode_racp_request(opcode, operator, **kwargs)  # type: ignore[arg-type]


# Response vectors from Nordic's RecordAccessControlPointDataCallbackTest.
@pytest.mark.parametrize(("raw", "request_opcode", "code"), [
    ("06000101", 1, RacpResponseCode.SUCCESS),
    ("06000C02", 12, RacpResponseCode.OPCODE_NOT_SUPPORTED),
    ("06000103", 1, RacpResponseCode.INVALID_OPERATOR),
    ("06000204", 2, RacpResponseCode.OPERATOR_NOT_SUPPORTED),
    ("06000105", 1, RacpResponseCode.INVALID_OPERAND),
    ("06000106", 1, RacpResponseCode.NO_RECORDS_FOUND),
    ("06000307", 3, RacpResponseCode.ABORT_UNSUCCESSFUL),
    ("06000208", 2, RacpResponseCode.PROCEDURE_NOT_COMPLETED),
    ("06000209", 2, RacpResponseCode.OPERAND_NOT_SUPPORTED),
    ("0600010A", 1, 10),
])
def test_response_codes(raw: str, request_opcode: int, code: RacpResponseCode | int) -> None:
    result = decode_racp_response(bytes.fromhex(raw))
    assert result == RacpResult(request_opcode, code)
    assert isinstance(result, RacpResult)
    assert result.ok is (code in (1, 6))


def test_number_of_records() -> None:
    assert decode_racp_response(bytes.fromhex("05000201")) == RacpNumberOfRecords(258)


@pytest.mark.parametrize(("raw", "error"), [
    ("", TruncatedPayload), ("06", TruncatedPayload), ("0600", TruncatedPayload),
    ("060001", TruncatedPayload), ("0500", TruncatedPayload), ("050001", TruncatedPayload),
    ("0601 0101", MalformedPayload), ("01030102 00", MalformedPayload),
    ("050004030201", MalformedPayload),
])
def test_bad_responses(raw: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_racp_response(bytes.fromhex(raw))
