"""The seam where bumble exceptions become bleak exceptions.

Nothing raised by bumble (or by asyncio on bumble's behalf) leaves this
package untranslated: callers only ever see :class:`bleak.exc.BleakError`
subclasses, with the bumble exception chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakError,
    BleakGATTProtocolError,
)
from bumble import att, core, hci

__all__ = ["BumbleLinkLostError", "BumbleTimeoutError", "translate", "transport_unavailable"]


class BumbleTimeoutError(BleakError, TimeoutError):
    """An operation did not complete in time (also a builtin ``TimeoutError``)."""


class BumbleLinkLostError(BleakError):
    """The link dropped while an operation was waiting on the peer."""


def transport_unavailable(spec: str, exc: BaseException) -> BleakBluetoothNotAvailableError:
    """The error for an HCI transport that cannot be opened."""
    return BleakBluetoothNotAvailableError(
        f"cannot open HCI transport {spec!r}: {exc}",
        BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
    )


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@contextlib.contextmanager
def translate(operation: str) -> Iterator[None]:
    """Re-raise bumble/asyncio failures of ``operation`` as bleak exceptions.

    A ``CancelledError`` that nobody asked for is how bumble aborts a pending
    GATT request when the link drops; it becomes :class:`BumbleLinkLostError`.
    A real cancellation of the current task passes through untouched.
    """
    try:
        yield
    except BleakError:
        raise
    except att.ATT_Error as exc:
        raise BleakGATTProtocolError(exc.error_code) from exc
    except (TimeoutError, core.TimeoutError, core.CommandTimeoutError) as exc:
        raise BumbleTimeoutError(f"{operation}: timed out") from exc
    except hci.HCI_Error as exc:
        raise BleakError(f"{operation}: HCI error {exc.error_name}") from exc
    except core.BaseBumbleError as exc:
        raise BleakError(f"{operation}: {exc}") from exc
    except asyncio.CancelledError as exc:
        if _being_cancelled():
            raise
        raise BumbleLinkLostError(f"{operation}: link lost") from exc
