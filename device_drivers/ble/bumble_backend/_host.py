"""One bumble host (``Device``) per gateway, shared by its scanner and clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from bleak.exc import BleakError
from bumble.device import Device
from bumble.keys import JsonKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

from device_drivers.ble.bumble_backend._config import BumbleHostConfig, resolve_address
from device_drivers.ble.bumble_backend._errors import translate, transport_unavailable

if TYPE_CHECKING:
    from device_drivers.ble.bumble_backend._client import BumbleBleakClient
    from device_drivers.ble.bumble_backend._scanner import BumbleBleakScanner

__all__ = ["BumbleDeviceDetails", "BumbleHost", "just_works", "require_host"]

logger = logging.getLogger(__name__)

AdvertisementListener = Callable[[Any], None]
_CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` for devices seen through this backend."""

    host: BumbleHost
    address: Any  # bumble hci.Address, with its address type


def just_works(_connection: Any) -> PairingConfig:
    """Secure Connections, Just Works, bonding: what a display-less gateway can do."""
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
    )


class BumbleHost:
    """The gateway's bumble host stack on one HCI transport.

    An async context manager; the transport is opened lazily, once, by the
    first scanner or client that needs it, and closed (links dropped) on exit.
    Reusable after exit, not re-entrant.
    """

    def __init__(self, config: BumbleHostConfig) -> None:
        self.config = config
        self._device: Any = None
        self._transport: Any = None
        self._open_lock = asyncio.Lock()
        self._entered = False
        self._scan_listeners: list[AdvertisementListener] = []
        self.connect_lock = asyncio.Lock()
        """bumble (like most controllers) initiates one LE connection at a time."""

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("BumbleHost is not re-entrant")
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            self._entered = False

    # -- bleak backend classes ---------------------------------------------------

    def backends(self) -> tuple[type[BumbleBleakScanner], type[BumbleBleakClient]]:
        """Scanner and client classes bound to this host, for ``backend=``."""
        from device_drivers.ble.bumble_backend._client import BumbleBleakClient
        from device_drivers.ble.bumble_backend._scanner import BumbleBleakScanner

        scanner = type("BumbleBleakScanner", (BumbleBleakScanner,), {"bound_host": self})
        client = type("BumbleBleakClient", (BumbleBleakClient,), {"bound_host": self})
        return scanner, client

    # -- opening and closing -----------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the transport is open and the host powered on."""
        return self._device is not None

    async def device(self) -> Any:
        """The powered-on bumble ``Device``, opening the transport on first use."""
        if self._device is not None:
            return self._device
        async with self._open_lock:
            if self._device is None:
                self._device = await self._open()
        return self._device

    async def _open(self) -> Any:
        spec = self.config.transport
        try:
            async with asyncio.timeout(self.config.open_timeout):
                self._transport = await open_transport(spec)
        except (OSError, TimeoutError) as exc:
            raise transport_unavailable(spec, exc) from exc
        _disable_nagle(self._transport)
        try:
            with translate(f"power on host on {spec}"):
                async with asyncio.timeout(self.config.open_timeout):
                    return await self._power_on()
        except BaseException:
            await self._close_transport()
            raise

    async def _power_on(self) -> Any:
        address = resolve_address(self.config)
        device = Device.with_hci(
            self.config.name, address, self._transport.source, self._transport.sink
        )
        if self.config.keystore_path is not None:
            device.keystore = JsonKeyStore(str(address), str(self.config.keystore_path))
        device.pairing_config_factory = just_works
        await device.power_on()
        logger.debug("bumble host %s up on %s", address, self.config.transport)
        return device

    async def aclose(self) -> None:
        """Drop every link, stop scanning, power off and close the transport."""
        device, self._device = self._device, None
        self._scan_listeners.clear()
        if device is not None:
            await self._shut_down(device)
        await self._close_transport()

    async def _shut_down(self, device: Any) -> None:
        for connection in list(device.connections.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.disconnect(), _CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            if device.is_scanning:
                await asyncio.wait_for(device.stop_scanning(), _CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(device.power_off(), _CLOSE_TIMEOUT)

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.close()

    # -- scanning, shared by every scanner of this host --------------------------

    async def add_scan_listener(self, listener: AdvertisementListener, *, active: bool) -> None:
        """Deliver advertisements to ``listener``; scanning starts with the first one."""
        device = await self.device()
        device.on(Device.EVENT_ADVERTISEMENT, listener)
        self._scan_listeners.append(listener)
        if not device.is_scanning:
            with translate("start scanning"):
                await device.start_scanning(active=active, filter_duplicates=False)

    async def remove_scan_listener(self, listener: AdvertisementListener) -> None:
        """Stop delivering to ``listener``; scanning stops with the last one."""
        device = self._device
        if listener not in self._scan_listeners or device is None:
            return
        self._scan_listeners.remove(listener)
        device.remove_listener(Device.EVENT_ADVERTISEMENT, listener)
        if not self._scan_listeners and device.is_scanning:
            with translate("stop scanning"):
                await device.stop_scanning()

    async def find_address(self, address: str, timeout: float) -> Any | None:
        """Scan until ``address`` advertises; its typed bumble address, or None."""
        wanted = address.upper().removesuffix("/P")
        found: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: Any) -> None:
            if advertisement.address.to_string(False) == wanted and not found.done():
                found.set_result(advertisement.address)

        await self.add_scan_listener(on_advertisement, active=False)
        try:
            return await asyncio.wait_for(found, timeout)
        except TimeoutError:
            return None
        finally:
            await self.remove_scan_listener(on_advertisement)

    # -- bonds -------------------------------------------------------------------

    async def bonded(self, peer_address: Any) -> bool:
        """Whether the keystore holds keys for ``peer_address``."""
        device = await self.device()
        if device.keystore is None:
            return False
        return await device.keystore.get(str(peer_address)) is not None

    async def forget(self, peer_address: Any) -> None:
        """Delete the bond with ``peer_address`` (no error when there is none)."""
        device = await self.device()
        if device.keystore is not None and await self.bonded(peer_address):
            await device.keystore.delete(str(peer_address))
            await device.refresh_resolving_list()


def _disable_nagle(transport: Any) -> None:
    """HCI over TCP is many tiny writes: Nagle would delay each ATT round trip."""
    stream = getattr(transport.sink, "transport", None)
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def require_host(*candidates: BumbleHost | None) -> BumbleHost:
    """The first host given, or a usage error explaining how to pass one."""
    for host in candidates:
        if host is not None:
            return host
    raise BleakError(
        "no BumbleHost: use the classes from BumbleHost.backends() or pass bumble_host="
    )
