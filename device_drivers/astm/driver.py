"""ASTM E1381/E1394 instruments behind the ``SerialDriver`` interface.

Supported: results pushed by the instrument (glucometer docking cradles, POC analyzers),
patient id from the P record, per-family test-code tables. Not supported: host queries
(Q records sent by us), clock access. The host acts as the E1381 *computer system*.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from device_drivers.astm.link import (
    FRAME_TIMEOUT,
    FrameRejected,
    Link,
    LinkEvent,
    MessageDiscarded,
    MessageReceived,
    Receiver,
)
from device_drivers.astm.mapping import POC_ANALYZER_CODES, CodeTable, observations_from_message
from device_drivers.serial_session import SerialDriver
from vigie.contract import Observation

__all__ = ["AstmDriver"]

log = logging.getLogger(__name__)


class AstmDriver(SerialDriver):
    """An ASTM instrument: the link passes whole messages, the table maps test codes."""

    family: ClassVar[str] = "astm"
    pushes_results: ClassVar[bool] = True
    carries_patient_id: ClassVar[bool] = True

    def __init__(self, table: CodeTable = POC_ANALYZER_CODES, *,
                 frame_timeout: float = FRAME_TIMEOUT) -> None:
        self.table = table
        self.frame_timeout = frame_timeout
        self.link = Link(role="computer", receiver=Receiver(frame_timeout=frame_timeout))
        self.frame_errors = 0
        self.discarded = 0

    def connection_made(self, now: float) -> None:
        self.link = Link(role="computer", receiver=Receiver(frame_timeout=self.frame_timeout))

    def data_received(self, data: bytes, now: float) -> list[Observation]:
        return self._handle(self.link.feed(data, now))

    def poll(self, now: float) -> list[Observation]:
        return self._handle(self.link.poll(now))

    def data_to_send(self) -> bytes:
        return self.link.data_to_send()

    def connection_lost(self, reason: str) -> None:
        self._handle(self.link.receiver.abort(reason))

    @property
    def deadline(self) -> float | None:
        """Next E1381 timer, for callers that sleep instead of polling."""
        return self.link.deadline

    def _handle(self, events: list[LinkEvent]) -> list[Observation]:
        found: list[Observation] = []
        for event in events:
            if isinstance(event, MessageReceived):
                observations, errors = observations_from_message(event.records, self.table)
                found += observations
                for error in errors:
                    log.warning("ASTM record skipped: %s", error)
            elif isinstance(event, FrameRejected):
                self.frame_errors += 1
                log.debug("ASTM frame NAKed: %s", event.error)
            elif isinstance(event, MessageDiscarded):
                self.discarded += 1
                log.warning("ASTM message discarded (%s, %d records)", event.reason,
                            event.records)
        return found
