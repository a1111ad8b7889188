"""bleak scanner backend on a shared bumble host."""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner

from device_drivers.ble.bumble_backend._advertising import merge_advertisement
from device_drivers.ble.bumble_backend._host import BumbleDeviceDetails, BumbleHost, require_host

__all__ = ["BumbleBleakScanner"]

logger = logging.getLogger(__name__)


class BumbleBleakScanner(BaseBleakScanner):
    """``BleakScanner(..., backend=...)`` on bumble.

    Use the subclass returned by :meth:`BumbleHost.backends`, or pass
    ``bumble_host=`` through ``BleakScanner``'s keyword arguments.
    """

    bound_host: ClassVar[BumbleHost | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bumble_host: BumbleHost | None = None,
        **kwargs: Any,  # other backends' arguments (bluez=, cb=) are ignored
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._host = require_host(bumble_host, type(self).bound_host)
        self._active = scanning_mode == "active"
        self._listener = self._on_advertisement  # one bound object, to unregister it

    async def start(self) -> None:
        """Clear what was seen and start receiving advertisements."""
        self.seen_devices = {}
        await self._host.add_scan_listener(self._listener, active=self._active)

    async def stop(self) -> None:
        """Stop receiving advertisements (the host stops scanning with the last user)."""
        await self._host.remove_scan_listener(self._listener)

    def _on_advertisement(self, advertisement: Any) -> None:
        key = advertisement.address.to_string(False)
        previous = self.seen_devices.get(key)
        data = merge_advertisement(advertisement, previous[1] if previous else None)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        details = BumbleDeviceDetails(self._host, advertisement.address)
        device = self.create_or_update_device(key, key, data.local_name, details, data)
        self.call_detection_callbacks(device, data)
