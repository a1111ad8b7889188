"""bleak client backend on a shared bumble host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import hci
from bumble.device import Peer
from bumble.gatt import GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR

from device_drivers.ble.bumble_backend._errors import translate
from device_drivers.ble.bumble_backend._gatt import build_collection, discover
from device_drivers.ble.bumble_backend._host import BumbleDeviceDetails, BumbleHost, require_host

__all__ = ["BumbleBleakClient"]

logger = logging.getLogger(__name__)

_DEFAULT_MTU = 23  # ATT_MTU before any exchange (Core v5.4 Vol 3 Part F 3.2.8)
_CONNECT_GRACE = 1.0  # lets bumble cancel its own LE Create Connection first
_DISCONNECT_TIMEOUT = 5.0


class BumbleBleakClient(BaseBleakClient):
    """``BleakClient(..., backend=...)`` on bumble.

    Use the subclass returned by :meth:`BumbleHost.backends`, or pass
    ``bumble_host=`` through ``BleakClient``'s keyword arguments; a
    :class:`BLEDevice` found by this backend's scanner also carries its host.
    """

    bound_host: ClassVar[BumbleHost | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        services: set[str] | None = None,
        bumble_host: BumbleHost | None = None,
        **kwargs: Any,  # other backends' arguments (bluez=, winrt=) are ignored
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        details = getattr(address_or_ble_device, "details", None)
        self._details = details if isinstance(details, BumbleDeviceDetails) else None
        self._host = require_host(
            bumble_host, type(self).bound_host, self._details.host if self._details else None
        )
        self._device_name = getattr(address_or_ble_device, "name", None)
        self._service_filter = services
        self._connection: Any = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # -- state -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The advertised name when known, else the address."""
        return self._device_name or self.address

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU (23 before the exchange)."""
        return int(self._connection.att_mtu) if self._connection else _DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._connection is not None

    def _require_connection(self) -> Any:
        if self._connection is None:
            raise BleakError(f"{self.address}: not connected")
        return self._connection

    # -- connecting --------------------------------------------------------------

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, encrypt with a stored bond (or pair), exchange MTU, discover.

        The whole sequence shares one ``timeout``; on expiry the half-made link
        is dropped and :class:`BumbleTimeoutError` (a ``BleakError``) raised.
        """
        if self._connection is not None:
            return
        timeout = float(kwargs.get("timeout", self._timeout))
        deadline = asyncio.get_running_loop().time() + timeout
        with translate(f"connect to {self.address}"):
            async with asyncio.timeout_at(deadline + _CONNECT_GRACE):
                connection = await self._establish(deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    await self._set_up(connection, pair)
            except BaseException:
                await self._abandon(connection)
                raise

    async def _establish(self, deadline: float) -> Any:
        device = await self._host.device()
        peer = await self._peer_address(deadline)
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.01)
        async with self._host.connect_lock:
            try:
                return await device.connect(peer, timeout=remaining)
            except asyncio.CancelledError:
                # bumble only cancels on its own timeout; without this the
                # controller would complete the connection later, unowned.
                cancel = hci.HCI_LE_Create_Connection_Cancel_Command()
                with contextlib.suppress(Exception):
                    await asyncio.shield(device.send_sync_command(cancel))
                raise

    async def _peer_address(self, deadline: float) -> Any:
        """The typed address: from the scan that found it, else by scanning now."""
        if self._details is not None:
            return self._details.address
        remaining = deadline - asyncio.get_running_loop().time()
        found = await self._host.find_address(self.address, remaining)
        if found is None:
            raise BleakDeviceNotFoundError(self.address, f"{self.address} is not advertising")
        return found

    async def _set_up(self, connection: Any, pair: bool) -> None:
        self._connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        bonded = await self._host.bonded(connection.peer_address)
        if not (bonded and await self._encrypt_with_bond(connection)) and pair:
            await connection.pair()
        await Peer(connection).request_mtu(self._host.config.mtu)
        proxies = await discover(connection.gatt_client, self._service_filter)
        self.services = build_collection(proxies, self._max_write_without_response)

    async def _encrypt_with_bond(self, connection: Any) -> bool:
        """Encrypt with the stored LTK, as BlueZ does for a bonded device."""
        try:
            await connection.encrypt()
        except hci.HCI_Error as exc:
            # The peer lost the bond: stay unencrypted, pair() can bond again.
            logger.warning("stored bond rejected by the peer (%s)", exc.error_name)
            return False
        return True

    async def _abandon(self, connection: Any) -> None:
        """Drop a link whose set-up failed; the caller never saw it connected."""
        with contextlib.suppress(KeyError):
            connection.remove_listener(connection.EVENT_DISCONNECTION, self._on_disconnection)
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wait_for(connection.disconnect(), _DISCONNECT_TIMEOUT))
        self._forget_link()

    def _max_write_without_response(self) -> int:
        return self.mtu_size - 3

    def _on_disconnection(self, reason: int) -> None:
        logger.debug("%s: disconnected (reason 0x%02X)", self.address, reason)
        self._forget_link()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    def _forget_link(self) -> None:
        self._connection = None
        self._subscribers.clear()

    async def disconnect(self) -> None:
        """Terminate the link (no-op when not connected)."""
        connection = self._connection
        if connection is None:
            return
        with translate(f"disconnect from {self.address}"):
            async with asyncio.timeout(_DISCONNECT_TIMEOUT):
                await connection.disconnect()
        self._forget_link()

    # -- security ----------------------------------------------------------------

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Bond (Just Works); keys go to the host's keystore. No-op when encrypted."""
        connection = self._require_connection()
        if connection.is_encrypted:
            return
        with translate(f"pair with {self.address}"):
            async with asyncio.timeout(kwargs.get("timeout", self._timeout)):
                await connection.pair()

    async def unpair(self) -> None:
        """Forget the bond and disconnect."""
        peer = self._connection.peer_address if self._connection else self._known_address()
        with translate(f"unpair {self.address}"):
            await self._host.forget(peer)
        await self.disconnect()

    def _known_address(self) -> Any:
        if self._details is not None:
            return self._details.address
        return hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)

    # -- GATT I/O ----------------------------------------------------------------

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a characteristic value (long reads included)."""
        return await self._read(characteristic.handle, use_cached)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a descriptor value."""
        return await self._read(descriptor.handle, use_cached)

    async def _read(self, handle: int, use_cached: bool) -> bytearray:
        client = self._require_connection().gatt_client
        if use_cached and handle in client.cached_values:
            return bytearray(client.cached_values[handle][1])
        with translate(f"read handle 0x{handle:04X} of {self.address}"):
            return bytearray(await client.read_value(handle))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        """Write Request (``response``) or Write Command."""
        await self._write(characteristic.handle, bytes(data), response)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        """Write a descriptor (always a Write Request)."""
        await self._write(descriptor.handle, bytes(data), True)

    async def _write(self, handle: int, data: bytes, response: bool) -> None:
        client = self._require_connection().gatt_client
        with translate(f"write handle 0x{handle:04X} of {self.address}"):
            await client.write_value(handle, data, with_response=response)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Enable notifications, or indications when the characteristic only indicates."""
        client = self._require_connection().gatt_client
        proxy = characteristic.obj
        if proxy.get_descriptor(GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR) is None:
            raise BleakError(f"{characteristic.uuid} has no CCCD: cannot notify")

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        with translate(f"subscribe to {characteristic.uuid} of {self.address}"):
            await client.subscribe(proxy, subscriber, prefer_notify=True)
        self._subscribers[characteristic.handle] = subscriber

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Disable notifications/indications on ``characteristic``."""
        client = self._require_connection().gatt_client
        subscriber = self._subscribers.pop(characteristic.handle, None)
        with translate(f"unsubscribe from {characteristic.uuid} of {self.address}"):
            await client.unsubscribe(characteristic.obj, subscriber, force=subscriber is None)
