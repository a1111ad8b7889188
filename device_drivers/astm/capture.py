"""Decode a recorded ASTM exchange offline: a serial-line capture or bare records.

A line capture (anything containing ENQ, STX or EOT) is replayed through the E1381
``Receiver`` exactly as a live line would be, so the same frame checks apply (§6.3) and
the other side's ACK/NAK interleaved in the capture are ignored like line noise (§6.2).
Bare records are split on CR or LF (E1394 §5.3 record terminator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device_drivers.astm.errors import AstmError, FrameError, RecordError
from device_drivers.astm.link import (
    ENQ,
    EOT,
    STX,
    FrameRejected,
    LinkEvent,
    MessageDiscarded,
    MessageReceived,
    Receiver,
)
from device_drivers.astm.mapping import POC_ANALYZER_CODES, CodeTable, observations_from_message
from vigie.contract import Observation

__all__ = ["CaptureResult", "decode_capture", "is_line_capture"]


@dataclass(slots=True)
class CaptureResult:
    """What a capture held: observations, and every problem met on the way."""

    observations: list[Observation] = field(default_factory=list)
    frame_errors: list[FrameError] = field(default_factory=list)
    record_errors: list[RecordError] = field(default_factory=list)
    discarded: list[MessageDiscarded] = field(default_factory=list)

    @property
    def problems(self) -> list[AstmError | MessageDiscarded]:
        return [*self.frame_errors, *self.record_errors, *self.discarded]


def is_line_capture(data: bytes) -> bool:
    """True when the bytes hold E1381 control characters (not just records)."""
    return any(c in data for c in (bytes([ENQ]), bytes([STX]), bytes([EOT])))


def decode_capture(data: bytes, table: CodeTable = POC_ANALYZER_CODES) -> CaptureResult:
    """Observations of a capture; never raises on its content."""
    result = CaptureResult()
    if not is_line_capture(data):
        text = data.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
        _add_message([r for r in text.split("\n") if r.strip()], table, result)
        return result
    start_stx, start_enq = data.find(bytes([STX])), data.find(bytes([ENQ]))
    if start_stx >= 0 and (start_enq < 0 or start_stx < start_enq):
        data = bytes([ENQ]) + data  # capture started after establishment
    receiver = Receiver()
    events = receiver.feed(data, 0.0) + receiver.abort("end of capture")
    for event in events:
        _apply(event, table, result)
    return result


def _apply(event: LinkEvent, table: CodeTable, result: CaptureResult) -> None:
    if isinstance(event, MessageReceived):
        _add_message(list(event.records), table, result)
    elif isinstance(event, FrameRejected):
        result.frame_errors.append(event.error)
    elif isinstance(event, MessageDiscarded):
        result.discarded.append(event)


def _add_message(records: list[str], table: CodeTable, result: CaptureResult) -> None:
    observations, errors = observations_from_message(records, table)
    result.observations += observations
    result.record_errors += errors
