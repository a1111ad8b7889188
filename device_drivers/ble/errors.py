"""Exceptions of the Bluetooth SIG codecs, grouped by what the caller does next.

::

    BleDecodeError (ValueError)      root: catch this to handle any codec failure
    ├── MalformedPayload             the bytes break the spec: drop or quarantine them
    │   └── TruncatedPayload         shorter than its flags demand (often a cut notification)
    ├── UnknownCharacteristic        no codec for this UUID, or the UUID text is not a UUID
    └── InvalidRequest               encoder arguments the spec forbids: fix the call

Errors carry structured fields (``characteristic``, ``offset``, ``needed``, ``got``) beside the
message so a gateway can log them without parsing text.
"""

from __future__ import annotations

__all__ = [
    "BleDecodeError",
    "InvalidRequest",
    "MalformedPayload",
    "TruncatedPayload",
    "UnknownCharacteristic",
]


class BleDecodeError(ValueError):
    """Root of every error raised by ``device_drivers.ble``."""


class MalformedPayload(BleDecodeError):
    """A characteristic value that does not follow its specification."""

    def __init__(self, message: str, *, characteristic: str | None = None,
                 offset: int | None = None) -> None:
        super().__init__(message)
        self.characteristic = characteristic
        self.offset = offset


class TruncatedPayload(MalformedPayload):
    """A value shorter than the fields its flags announce."""

    def __init__(self, *, characteristic: str, field: str, needed: int, got: int) -> None:
        super().__init__(
            f"{characteristic}: truncated at {field}: needs {needed} bytes, got {got}",
            characteristic=characteristic, offset=got)
        self.field = field
        self.needed = needed
        self.got = got


class UnknownCharacteristic(BleDecodeError):
    """No codec is registered for this characteristic (or the UUID is not one)."""

    def __init__(self, message: str, *, uuid: str | int | None = None) -> None:
        super().__init__(message)
        self.uuid = uuid


class InvalidRequest(BleDecodeError):
    """Arguments that cannot be encoded (e.g. an RACP operator without its operands)."""
