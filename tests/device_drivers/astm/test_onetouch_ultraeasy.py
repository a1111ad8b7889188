"""Second serial family (OneTouch Ultra Easy) behind the same SerialDriver interface."""

from __future__ import annotations

import struct
from datetime import datetime

import pytest

from device_drivers.onetouch import (
    PacketError,
    UltraEasyDriver,
    crc16_ccitt,
    decode_packet,
    encode_packet,
)
from device_drivers.serial_session import CapabilityError, SerialDriver
from vigie.contract import Kind


def test_crc_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value


def test_packet_round_trip_and_rejects() -> None:
    raw = encode_packet(0x03, b"\x05\x1f\xf5\x01")
    assert raw[:3] == b"\x02\x0a\x03" and raw[-3] == 0x03
    assert decode_packet(raw).message == b"\x05\x1f\xf5\x01"
    with pytest.raises(PacketError):
        decode_packet(raw[:-1] + bytes([raw[-1] ^ 1]))


class _Meter:
    """A scripted meter: acknowledges each command, then answers it."""

    def __init__(self, records: list[tuple[int, int]]) -> None:
        self.records = records

    def answer(self, raw: bytes) -> bytes:
        packet = decode_packet(raw)
        if not packet.message:  # host acknowledgement
            return b""
        (index,) = struct.unpack_from("<H", packet.message, 2)
        if index == 501:
            body = b"\x05\x06" + struct.pack("<H", len(self.records))
        else:
            body = b"\x05\x06" + struct.pack("<II", *self.records[index])
        return encode_packet(0x04, b"") + encode_packet(0x00, body)


def test_dump_through_the_driver_interface() -> None:
    stamp = int((datetime(2024, 3, 1, 8, 0) - datetime(1970, 1, 1)).total_seconds())
    meter = _Meter([(stamp, 104), (stamp + 3600, 187)])
    driver: SerialDriver = UltraEasyDriver()
    assert driver.can_dump_memory and not driver.pushes_results
    driver.connection_made(0.0)
    driver.request_dump(0.0)
    found = []
    for _ in range(10):
        out = driver.data_to_send()
        replies = b"".join(meter.answer(p) for p in _split(out))
        found += driver.data_received(b"\xffnoise" + replies, 0.1)
    assert [(o.kind, o.value, o.sequence) for o in found] == [
        (Kind.GLUCOSE, 104.0, 0), (Kind.GLUCOSE, 187.0, 1)]
    assert found[0].device_time == datetime(2024, 3, 1, 8, 0)


def test_silent_meter_abandons_the_dump() -> None:
    driver = UltraEasyDriver()
    driver.request_dump(0.0)
    driver.data_to_send()
    assert driver.poll(5.0) == []
    assert driver.data_received(b"", 5.1) == []


def test_astm_driver_declares_no_dump() -> None:
    from device_drivers.astm import AstmDriver

    with pytest.raises(CapabilityError):
        AstmDriver().request_dump(0.0)


def _split(data: bytes) -> list[bytes]:
    out = []
    while data:
        out.append(data[:data[1]])
        data = data[data[1]:]
    return out
