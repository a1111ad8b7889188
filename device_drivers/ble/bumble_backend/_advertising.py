"""bumble advertisements -> bleak ``AdvertisementData`` (pure functions).

AD structures are decoded from their raw bytes (Core Supplement, Part A,
section 1) rather than through bumble's typed accessors, so the result does not
depend on how a given bumble release models each data type.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from typing import Any

from bleak.backends.scanner import AdvertisementData
from bleak.uuids import normalize_uuid_16, normalize_uuid_32

__all__ = ["merge_advertisement", "uuid_from_le_bytes"]

_UUID16_LISTS = (0x02, 0x03)
_UUID32_LISTS = (0x04, 0x05)
_UUID128_LISTS = (0x06, 0x07)
_SHORT_NAME, _COMPLETE_NAME, _TX_POWER = 0x08, 0x09, 0x0A
_SERVICE_DATA = {0x16: 2, 0x20: 4, 0x21: 16}  # AD type -> UUID size in bytes
_MANUFACTURER = 0xFF


def uuid_from_le_bytes(raw: bytes) -> str:
    """A little-endian 16-, 32- or 128-bit UUID as bleak's normalized string."""
    if len(raw) == 2:
        return normalize_uuid_16(struct.unpack("<H", raw)[0])
    if len(raw) == 4:
        return normalize_uuid_32(struct.unpack("<I", raw)[0])
    return str(uuid.UUID(bytes=bytes(reversed(raw))))


def _uuid_list(data: bytes, size: int) -> list[str]:
    return [uuid_from_le_bytes(data[i : i + size]) for i in range(0, len(data) - size + 1, size)]


def _service_uuids(structures: Iterable[tuple[int, bytes]]) -> list[str]:
    found: list[str] = []
    for ad_type, data in structures:
        if ad_type in _UUID16_LISTS:
            found += _uuid_list(data, 2)
        elif ad_type in _UUID32_LISTS:
            found += _uuid_list(data, 4)
        elif ad_type in _UUID128_LISTS:
            found += _uuid_list(data, 16)
    return found


def _service_data(structures: Iterable[tuple[int, bytes]]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for ad_type, data in structures:
        size = _SERVICE_DATA.get(ad_type)
        if size is not None and len(data) >= size:
            found[uuid_from_le_bytes(data[:size])] = bytes(data[size:])
    return found


def _manufacturer_data(structures: Iterable[tuple[int, bytes]]) -> dict[int, bytes]:
    return {
        struct.unpack_from("<H", data)[0]: bytes(data[2:])
        for ad_type, data in structures
        if ad_type == _MANUFACTURER and len(data) >= 2
    }


def _local_name(structures: Iterable[tuple[int, bytes]]) -> str | None:
    names = {
        ad_type: data for ad_type, data in structures if ad_type in (_SHORT_NAME, _COMPLETE_NAME)
    }
    raw = names.get(_COMPLETE_NAME, names.get(_SHORT_NAME))
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _tx_power(structures: Iterable[tuple[int, bytes]]) -> int | None:
    for ad_type, data in structures:
        if ad_type == _TX_POWER and len(data) == 1:
            return int(struct.unpack("<b", data)[0])
    return None


def merge_advertisement(
    advertisement: Any, previous: AdvertisementData | None
) -> AdvertisementData:
    """Decode a bumble ``Advertisement`` on top of what was last seen from the device.

    Like BlueZ, fields absent from this report (a scan response often carries
    only the name) keep their previous value.
    """
    ads = [(int(t), bytes(d)) for t, d in advertisement.data.ad_structures]
    before = previous or _EMPTY
    name, tx_power = _local_name(ads), _tx_power(ads)
    return AdvertisementData(
        local_name=before.local_name if name is None else name,
        manufacturer_data={**before.manufacturer_data, **_manufacturer_data(ads)},
        service_data={**before.service_data, **_service_data(ads)},
        service_uuids=list(dict.fromkeys([*before.service_uuids, *_service_uuids(ads)])),
        tx_power=before.tx_power if tx_power is None else tx_power,
        rssi=int(advertisement.rssi),
        platform_data=(advertisement,),
    )


_EMPTY = AdvertisementData(None, {}, {}, [], None, 0, ())
