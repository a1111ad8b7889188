"""A bleak backend on bumble, Google's Python Bluetooth host stack.

The gateway codes against bleak; in tests and in the demo (and on any HCI
controller bumble can drive, e.g. ``usb:0``) it runs on this backend, whose
host stack talks HCI to a controller through a real transport::

    async with BumbleHost(BumbleHostConfig("tcp-client:127.0.0.1:9001",
                                           keystore_path=Path("bonds.json"))) as host:
        scanner_cls, client_cls = host.backends()
        found = await BleakScanner.find_device_by_filter(
            lambda d, ad: GLUCOSE in ad.service_uuids, backend=scanner_cls)
        async with BleakClient(found, backend=client_cls) as client:
            await client.pair()

One :class:`BumbleHost` (transport opened lazily, once) serves every scanner
and client of a gateway.  ``BleakScanner``/``BleakClient`` pass unknown keyword
arguments to the backend, so ``bumble_host=host`` with the unbound
:class:`BumbleBleakScanner`/:class:`BumbleBleakClient` works as well.

Exceptions (all ``bleak.exc.BleakError``; bumble's are chained as ``__cause__``)::

    BleakError
     ├── BumbleTimeoutError           also TimeoutError: retry later
     ├── BumbleLinkLostError          the link dropped mid-operation: reconnect, resume
     ├── BleakDeviceNotFoundError     not advertising: wait for the device to wake up
     ├── BleakGATTProtocolError       ATT error from the peer (.code): fix the call or pair
     └── BleakBluetoothNotAvailableError   the HCI transport cannot be opened
"""

from device_drivers.ble.bumble_backend._client import BumbleBleakClient
from device_drivers.ble.bumble_backend._config import BumbleHostConfig
from device_drivers.ble.bumble_backend._errors import BumbleLinkLostError, BumbleTimeoutError
from device_drivers.ble.bumble_backend._host import BumbleDeviceDetails, BumbleHost
from device_drivers.ble.bumble_backend._scanner import BumbleBleakScanner

__all__ = [
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "BumbleDeviceDetails",
    "BumbleHost",
    "BumbleHostConfig",
    "BumbleLinkLostError",
    "BumbleTimeoutError",
]
