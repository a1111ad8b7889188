"""BLE device sessions on bleak's public API (``BleakScanner``, ``BleakClient``).

The backend is injected: bleak's default (BlueZ on a Raspberry Pi) or the bumble backend of
``device_drivers.ble.bumble_backend`` in tests and in the demo. Nothing here knows about
patients or the outbox: observations go to a ``SessionSink``.

- ``BleCentral``: the scanner (filtered by health service UUIDs, with a watchdog) and one
  worker per known device, backoff by error kind.
- ``DeviceSession``: one connection as named steps (connect/bond, clock, subscribe, RACP
  transfer or indications, disconnect), each bounded by a timeout.
- Errors: see ``device_drivers.ble.sessions.errors`` (tree in its docstring).
"""

from device_drivers.ble.sessions.backoff import Backoff, BackoffPolicy, BackoffRule
from device_drivers.ble.sessions.central import BleCentral, CentralSettings, CentralStats
from device_drivers.ble.sessions.device import (
    ClockSample,
    Delivery,
    DeviceSession,
    KnownDevice,
    SessionReport,
    SessionSettings,
    SessionSink,
)
from device_drivers.ble.sessions.errors import (
    BleSessionError,
    DeliveryRefused,
    DeviceGone,
    ErrorKind,
    ProtocolError,
    SessionTimeout,
)
from device_drivers.ble.sessions.profiles import (
    HEALTH_SERVICES,
    PROFILES,
    Profile,
    ProfileSpec,
    profile_of,
    sig_uuid,
)

__all__ = [
    "HEALTH_SERVICES",
    "PROFILES",
    "Backoff",
    "BackoffPolicy",
    "BackoffRule",
    "BleCentral",
    "BleSessionError",
    "CentralSettings",
    "CentralStats",
    "ClockSample",
    "Delivery",
    "DeliveryRefused",
    "DeviceGone",
    "DeviceSession",
    "ErrorKind",
    "KnownDevice",
    "Profile",
    "ProfileSpec",
    "ProtocolError",
    "SessionReport",
    "SessionSettings",
    "SessionSink",
    "SessionTimeout",
    "profile_of",
    "sig_uuid",
]
