"""Errors of BLE sessions, grouped by what the caller does next (each has a ``kind``).

::

    BleSessionError                  root; ``.kind``, ``.step``, ``.address``
    ├── DeviceGone          (gone)      not advertising or the link dropped: retry soon, when
    │                                   it advertises again (short backoff)
    ├── SessionTimeout      (timeout)   a step got no answer in time (also ``TimeoutError``):
    │                                   back off exponentially
    ├── ProtocolError       (protocol)  ATT error, RACP failure code, missing characteristic:
    │                                   back off longer; ``.code`` when the device gave one
    └── DeliveryRefused     (refused)   the consumer could not commit (outbox full): the RACP
                                        transfer is aborted, retried later from the cursor

``translate`` is the seam: no bleak exception leaves the sessions package untranslated
(``raise ... from exc`` keeps the original as ``__cause__``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum

from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from device_drivers.ble.errors import BleDecodeError

__all__ = [
    "BleSessionError",
    "DeliveryRefused",
    "DeviceGone",
    "ErrorKind",
    "ProtocolError",
    "SessionTimeout",
    "translate",
]


class ErrorKind(StrEnum):
    GONE = "gone"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    REFUSED = "refused"


class BleSessionError(Exception):
    """Root of the session errors."""

    kind: ErrorKind = ErrorKind.PROTOCOL

    def __init__(self, message: str, *, step: str = "", address: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.address = address


class DeviceGone(BleSessionError):
    """The device is not reachable any more (not advertising, link lost)."""

    kind = ErrorKind.GONE


class SessionTimeout(BleSessionError, TimeoutError):
    """A step of the session did not complete in time."""

    kind = ErrorKind.TIMEOUT


class ProtocolError(BleSessionError):
    """The device answered, but not as its profile says."""

    kind = ErrorKind.PROTOCOL

    def __init__(self, message: str, *, step: str = "", address: str = "",
                 code: int | None = None) -> None:
        super().__init__(message, step=step, address=address)
        self.code = code


class DeliveryRefused(BleSessionError):
    """Raised by a sink that cannot take observations now (nothing was committed)."""

    kind = ErrorKind.REFUSED


@contextlib.contextmanager
def translate(step: str, address: str, link_up: Callable[[], bool]) -> Iterator[None]:
    """Re-raise what bleak (or a codec) raises during ``step`` as a session error.

    A ``BleakError`` on a link that is down is a lost link (``DeviceGone``), whatever its text:
    backends word it differently (BlueZ D-Bus errors, bumble's link-lost error).
    """
    try:
        yield
    except BleSessionError:
        raise
    except BleakDeviceNotFoundError as exc:
        raise DeviceGone(f"{step}: device not found", step=step, address=address) from exc
    except TimeoutError as exc:  # asyncio timeouts and backends' timeout errors
        raise SessionTimeout(f"{step}: timed out", step=step, address=address) from exc
    except BleakGATTProtocolError as exc:
        raise ProtocolError(f"{step}: ATT error 0x{exc.code:02X}", step=step,
                            address=address, code=exc.code) from exc
    except BleakError as exc:
        if not link_up():
            raise DeviceGone(f"{step}: link lost ({exc})", step=step, address=address) from exc
        raise ProtocolError(f"{step}: {exc}", step=step, address=address) from exc
    except BleDecodeError as exc:
        raise ProtocolError(f"{step}: {exc}", step=step, address=address) from exc
