"""Public entry point of the BLE sessions: see ``device_drivers.ble.sessions``."""

from device_drivers.ble.sessions import *  # noqa: F403
from device_drivers.ble.sessions import __all__ as __all__
