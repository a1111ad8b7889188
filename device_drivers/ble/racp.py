"""Record Access Control Point 0x2A52 (GLS 3.4, 4.9): requests out, responses in.

A request is ``opcode, operator, [filter type, operands]``; the meter indicates back either a
Number of Stored Records Response ``05 00 <u16 count>`` or a Response Code
``06 00 <request opcode> <response code>``. Filter type 0x01 filters by sequence number
(u16 operands), 0x02 by user-facing time (Date Time operands, 7 bytes each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from device_drivers.ble.errors import InvalidRequest, MalformedPayload
from device_drivers.ble.reader import Reader

__all__ = [
    "RacpFilterType",
    "RacpNumberOfRecords",
    "RacpOpcode",
    "RacpOperator",
    "RacpResponseCode",
    "RacpResult",
    "decode_racp_response",
    "encode_racp_request",
    "request_abort",
    "request_delete_all",
    "request_number_of_records",
    "request_records",
    "request_records_from",
]


class RacpOpcode(IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class RacpOperator(IntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL = 2
    GREATER_THAN_OR_EQUAL = 3
    WITHIN_RANGE = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class RacpFilterType(IntEnum):
    SEQUENCE_NUMBER = 1
    USER_FACING_TIME = 2


class RacpResponseCode(IntEnum):
    SUCCESS = 1
    OPCODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


_RECORD_OPCODES = (RacpOpcode.REPORT_STORED_RECORDS, RacpOpcode.DELETE_STORED_RECORDS,
                   RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS)
_NO_OPERAND = (RacpOperator.ALL_RECORDS, RacpOperator.FIRST_RECORD, RacpOperator.LAST_RECORD)
Bound = int | datetime


def _operand(filter_type: RacpFilterType, bound: Bound) -> bytes:
    """One operand: a u16 sequence number or a 7-byte Date Time (GLS 4.9.1)."""
    if filter_type is RacpFilterType.SEQUENCE_NUMBER:
        if isinstance(bound, datetime) or not 0 <= bound <= 0xFFFF:
            raise InvalidRequest(f"sequence operand must be 0-65535, got {bound!r}")
        return bound.to_bytes(2, "little")
    if not isinstance(bound, datetime):
        raise InvalidRequest(f"user-facing time operand must be a datetime, got {bound!r}")
    return (bound.year.to_bytes(2, "little")
            + bytes([bound.month, bound.day, bound.hour, bound.minute, bound.second]))


def _bounds(operator: RacpOperator, low: Bound | None, high: Bound | None) -> list[Bound]:
    wanted = {RacpOperator.LESS_THAN_OR_EQUAL: [high],
              RacpOperator.GREATER_THAN_OR_EQUAL: [low],
              RacpOperator.WITHIN_RANGE: [low, high]}[operator]
    bounds = [b for b in wanted if b is not None]
    if len(bounds) != len(wanted):
        raise InvalidRequest(f"operator {operator.name} needs "
                             f"{'low and high' if len(wanted) == 2 else 'its bound'}")
    return bounds


def encode_racp_request(opcode: RacpOpcode, operator: RacpOperator, *,
                        filter_type: RacpFilterType | None = None,
                        low: Bound | None = None, high: Bound | None = None) -> bytes:
    """Encode a client request (GLS 4.9). Abort takes the null operator and no operand;
    report/delete/count take all/first/last (no operand) or <=, >=, range with a filter.
    """
    if opcode is RacpOpcode.ABORT_OPERATION:
        if operator is not RacpOperator.NULL or filter_type is not None:
            raise InvalidRequest("abort takes the null operator and no operand")
        return bytes([opcode, operator])
    if opcode not in _RECORD_OPCODES:
        raise InvalidRequest(f"{opcode.name} is sent by the server, not the client")
    if operator is RacpOperator.NULL:
        raise InvalidRequest(f"{opcode.name} needs an operator other than null")
    if operator in _NO_OPERAND:
        if filter_type is not None or low is not None or high is not None:
            raise InvalidRequest(f"operator {operator.name} takes no operand")
        return bytes([opcode, operator])
    if filter_type is None:
        raise InvalidRequest(f"operator {operator.name} needs a filter type")
    operands = b"".join(_operand(filter_type, b) for b in _bounds(operator, low, high))
    return bytes([opcode, operator, filter_type]) + operands


def request_records(operator: RacpOperator = RacpOperator.ALL_RECORDS) -> bytes:
    """Report stored records: all (``01 01``), first (``01 05``) or last (``01 06``)."""
    return encode_racp_request(RacpOpcode.REPORT_STORED_RECORDS, operator)


def request_records_from(sequence: int) -> bytes:
    """Report records with sequence number >= ``sequence``: ``01 03 01 <u16>``."""
    return encode_racp_request(RacpOpcode.REPORT_STORED_RECORDS,
                               RacpOperator.GREATER_THAN_OR_EQUAL,
                               filter_type=RacpFilterType.SEQUENCE_NUMBER, low=sequence)


def request_number_of_records() -> bytes:
    """Report the number of all stored records: ``04 01``."""
    return encode_racp_request(RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
                               RacpOperator.ALL_RECORDS)


def request_delete_all() -> bytes:
    """Delete all stored records: ``02 01``."""
    return encode_racp_request(RacpOpcode.DELETE_STORED_RECORDS, RacpOperator.ALL_RECORDS)


def request_abort() -> bytes:
    """Abort the operation in progress: ``03 00``."""
    return encode_racp_request(RacpOpcode.ABORT_OPERATION, RacpOperator.NULL)


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    """Number of Stored Records Response (opcode 5)."""

    count: int


@dataclass(frozen=True, slots=True)
class RacpResult:
    """Response Code (opcode 6): the outcome of ``request_opcode``.

    ``code`` is a ``RacpResponseCode`` or, for a value the spec reserves, the raw int.
    """

    request_opcode: int
    code: RacpResponseCode | int

    @property
    def ok(self) -> bool:
        """True for success and for 'no records found' (an empty result, not a failure)."""
        return self.code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)


def _response_code(value: int) -> RacpResponseCode | int:
    try:
        return RacpResponseCode(value)
    except ValueError:
        return value


def decode_racp_response(data: bytes) -> RacpNumberOfRecords | RacpResult:
    """Decode an RACP indication from the server (GLS 4.9.2-4.9.3)."""
    rd = Reader(data, "Record Access Control Point")
    opcode = rd.u8("opcode")
    operator = rd.u8("operator")
    if operator != RacpOperator.NULL:
        raise MalformedPayload(f"RACP response with operator {operator}, expected null (0)",
                               characteristic=rd.characteristic, offset=1)
    if opcode == RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        count = rd.u16("number of records")
        result: RacpNumberOfRecords | RacpResult = RacpNumberOfRecords(count)
    elif opcode == RacpOpcode.RESPONSE_CODE:
        request = rd.u8("request opcode")
        result = RacpResult(request, _response_code(rd.u8("response code")))
    else:
        raise MalformedPayload(f"RACP opcode {opcode} is not a response",
                               characteristic=rd.characteristic, offset=0)
    if rd.remaining:
        raise MalformedPayload(f"RACP response has {rd.remaining} trailing bytes",
                               characteristic=rd.characteristic, offset=rd.offset)
    return result
