"""ASTM E1381 (link) and E1394 (records) serial instruments.

Public surface: the link state machines (``Receiver``, ``Sender``, ``Link`` and their
events), the record parser, the test-code tables and the mapping to observations, the
offline capture decoder and the ``AstmDriver`` for ``SerialSession``. Errors are drawn
in ``device_drivers.astm.errors``.
"""

from device_drivers.astm.capture import CaptureResult, decode_capture
from device_drivers.astm.driver import AstmDriver
from device_drivers.astm.errors import (
    AstmError,
    ChecksumError,
    CodeTableError,
    FrameError,
    FrameNumberError,
    MalformedFrameError,
    RecordError,
)
from device_drivers.astm.link import (
    ContentionLost,
    Frame,
    FrameRejected,
    Link,
    LinkEvent,
    MessageDiscarded,
    MessageReceived,
    MessageSent,
    Receiver,
    Sender,
    SendFailed,
    TransferEnded,
    checksum,
    encode_frame,
    encode_message,
    parse_frame,
)
from device_drivers.astm.mapping import (
    FAMILIES,
    GLUCOMETER_CODES,
    POC_ANALYZER_CODES,
    CodeTable,
    TestCode,
    UnitConversion,
    observation_from_result,
    observations_from_message,
    table_from_mapping,
)
from device_drivers.astm.records import (
    Delimiters,
    ResultRecord,
    UniversalTestId,
    parse_message,
    parse_record,
    parse_timestamp,
)

__all__ = [
    "FAMILIES",
    "GLUCOMETER_CODES",
    "POC_ANALYZER_CODES",
    "AstmDriver",
    "AstmError",
    "CaptureResult",
    "ChecksumError",
    "CodeTable",
    "CodeTableError",
    "ContentionLost",
    "Delimiters",
    "Frame",
    "FrameError",
    "FrameNumberError",
    "FrameRejected",
    "Link",
    "LinkEvent",
    "MalformedFrameError",
    "MessageDiscarded",
    "MessageReceived",
    "MessageSent",
    "Receiver",
    "RecordError",
    "ResultRecord",
    "SendFailed",
    "Sender",
    "TestCode",
    "TransferEnded",
    "UnitConversion",
    "UniversalTestId",
    "checksum",
    "decode_capture",
    "encode_frame",
    "encode_message",
    "observation_from_result",
    "observations_from_message",
    "parse_frame",
    "parse_message",
    "parse_record",
    "parse_timestamp",
    "table_from_mapping",
]
