"""GATT discovery with bumble's client, mapped onto bleak's service collection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bumble.core import UUID

from device_drivers.ble.bumble_backend._advertising import uuid_from_le_bytes

__all__ = ["build_collection", "discover", "to_bumble_uuid", "uuid_str"]

# Characteristic properties bits (Core v5.4 Vol 3 Part G 3.3.1.1) -> bleak names.
_PROPERTY_NAMES: tuple[tuple[int, CharacteristicPropertyName], ...] = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


def uuid_str(value: Any) -> str:
    """A bumble ``UUID`` as bleak's normalized lowercase string."""
    return uuid_from_le_bytes(bytes(value.to_bytes()))


def to_bumble_uuid(value: str) -> Any:
    """A bleak UUID string as a bumble ``UUID``, short form when SIG-assigned.

    Find By Type Value compares bytes, so a 16-bit service must be asked for in
    its 16-bit form.
    """
    text = value.lower()
    if text.startswith("0000") and text.endswith(_SIG_BASE_SUFFIX):
        return UUID.from_16_bits(int(text[4:8], 16))
    return UUID(text)


_SIG_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def property_names(properties: int) -> list[CharacteristicPropertyName]:
    """The bleak names of a characteristic properties bit field."""
    return [name for bit, name in _PROPERTY_NAMES if properties & bit]


async def discover(gatt_client: Any, service_uuids: Iterable[str] | None) -> list[Any]:
    """Discover primary services, their characteristics and descriptors."""
    wanted = [to_bumble_uuid(u) for u in service_uuids] if service_uuids else []
    services = await gatt_client.discover_services(wanted)
    for service in services:
        await gatt_client.discover_characteristics(uuids=(), service=service)
    for service in services:
        for characteristic in service.characteristics:
            await gatt_client.discover_descriptors(characteristic)
    return list(services)


def build_collection(
    services: Iterable[Any], max_write_without_response: Callable[[], int]
) -> BleakGATTServiceCollection:
    """Map discovered bumble proxies onto a bleak service collection."""
    collection = BleakGATTServiceCollection()
    for service_proxy in services:
        service = BleakGATTService(
            service_proxy, service_proxy.handle, uuid_str(service_proxy.uuid)
        )
        collection.add_service(service)
        for char_proxy in service_proxy.characteristics:
            _add_characteristic(collection, service, char_proxy, max_write_without_response)
    return collection


def _add_characteristic(
    collection: BleakGATTServiceCollection,
    service: BleakGATTService,
    proxy: Any,
    max_write_without_response: Callable[[], int],
) -> None:
    characteristic = BleakGATTCharacteristic(
        proxy,
        proxy.handle,
        uuid_str(proxy.uuid),
        property_names(int(proxy.properties)),
        max_write_without_response,
        service,
    )
    collection.add_characteristic(characteristic)
    for descriptor_proxy in proxy.descriptors:
        collection.add_descriptor(
            BleakGATTDescriptor(
                descriptor_proxy,
                descriptor_proxy.handle,
                uuid_str(descriptor_proxy.type),
                characteristic,
            )
        )
