"""Device Information Service strings and Battery Level.

References: DIS 1.1 section 3 (Manufacturer Name 0x2A29, Model Number 0x2A24, Serial Number
0x2A25, Firmware Revision 0x2A26: UTF-8 strings, not NUL-terminated) and BAS 1.0 section 3.1
(Battery Level 0x2A19: u8 percent, 0-100; 101-255 reserved).
"""

from __future__ import annotations

from decimal import Decimal

from device_drivers.ble._observe import Record, observe
from device_drivers.ble.errors import MalformedPayload
from device_drivers.ble.reader import Reader
from vigie.contract import Kind, Observation

__all__ = ["battery_level_observations", "decode_battery_level", "decode_utf8_string"]


def decode_utf8_string(data: bytes, characteristic: str = "Device Information string") -> str:
    """Decode a DIS string. Trailing NULs (some firmwares pad to a fixed size) are dropped."""
    try:
        return bytes(data).decode("utf-8").rstrip("\x00")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"{characteristic}: not UTF-8 ({exc.reason})",
                               characteristic=characteristic, offset=exc.start) from exc


def decode_battery_level(data: bytes) -> int:
    """Decode Battery Level 0x2A19 (BAS 3.1): percent 0-100."""
    level = Reader(data, "Battery Level").u8("level")
    if level > 100:
        raise MalformedPayload(f"Battery Level: {level} is reserved (0-100 allowed)",
                               characteristic="Battery Level", offset=0)
    return level


def battery_level_observations(level: int) -> list[Observation]:
    """The battery level as one observation in %."""
    return [observe(Kind.BATTERY_LEVEL, Decimal(level), "%", Record())]
