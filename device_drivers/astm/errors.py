"""Exceptions of the ASTM package, grouped by what the caller does next.

::

    AstmError                     root: catch this to catch everything below
    ├── FrameError                drop: a frame failed E1381 §6.3 checks (it is NAKed)
    │   ├── ChecksumError         §6.3.3: received C1C2 differs from the computed sum
    │   ├── FrameNumberError      §6.3.2: FN is neither the expected nor the last accepted
    │   └── MalformedFrameError   §6.3.1: missing ETX/ETB, CR LF, bad length, control chars
    ├── RecordError               quarantine: an E1394 record cannot be parsed
    └── CodeTableError            fix the configuration: a test-code table is invalid

Link timeouts (§6.5.2) are not raised: the state machines report them as events
(``MessageDiscarded``, ``SendFailed``). Port loss belongs to
``device_drivers.serial_session`` (``DeviceGone``).
"""

from __future__ import annotations

__all__ = [
    "AstmError",
    "ChecksumError",
    "CodeTableError",
    "FrameError",
    "FrameNumberError",
    "MalformedFrameError",
    "RecordError",
]


class AstmError(Exception):
    """Root of every error raised by ``device_drivers.astm``."""


class FrameError(AstmError):
    """A frame is defective (E1381 §6.5.1): it is NAKed and never passed up.

    ``frame`` holds the raw bytes as received (STX to LF) for diagnostics.
    """

    def __init__(self, message: str, frame: bytes = b"") -> None:
        super().__init__(message)
        self.frame = frame


class ChecksumError(FrameError):
    """The checksum of a frame does not match (E1381 §6.3.3)."""

    def __init__(self, received: str, computed: str, frame: bytes = b"") -> None:
        super().__init__(f"bad checksum: frame says {received!r}, computed {computed!r}", frame)
        self.received = received
        self.computed = computed


class FrameNumberError(FrameError):
    """A frame number that is neither the next one nor a repeat (E1381 §6.3.2)."""

    def __init__(self, received: str, expected: int, frame: bytes = b"") -> None:
        super().__init__(f"bad frame number: got {received!r}, expected {expected}", frame)
        self.received = received
        self.expected = expected


class MalformedFrameError(FrameError):
    """The frame structure is wrong (E1381 §6.3.1, §6.6 restricted characters)."""


class RecordError(AstmError):
    """An E1394 record cannot be parsed; ``record`` holds its text."""

    def __init__(self, message: str, record: str = "") -> None:
        super().__init__(message)
        self.record = record


class CodeTableError(AstmError):
    """A test-code table (TOML/dict) is invalid: unknown kind, bad conversion."""
