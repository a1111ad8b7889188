"""LifeScan OneTouch serial meters (non-ASTM family) behind ``SerialDriver``."""

from device_drivers.onetouch.ultraeasy import (
    OneTouchError,
    Packet,
    PacketError,
    UltraEasyDriver,
    crc16_ccitt,
    decode_packet,
    encode_packet,
)

__all__ = ["OneTouchError", "Packet", "PacketError", "UltraEasyDriver", "crc16_ccitt",
           "decode_packet", "encode_packet"]
