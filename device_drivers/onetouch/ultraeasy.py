"""LifeScan OneTouch Ultra Easy / Ultra Mini: binary serial protocol (9600 8N1).

Supported: reading the memory (record count, then each record: meter time and mg/dL).
Not supported: clock, unit preference, serial number, memory erase.

Packet (LifeScan shared binary framing): ``STX len link msg ETX crc_lo crc_hi`` where
``len`` counts the whole packet, ``crc`` is CRC-16/CCITT-FALSE (poly 0x1021, seed
0xFFFF) over STX..ETX, little-endian. The link byte carries: 0x01 sent counter,
0x02 expect-receive counter, 0x04 acknowledge, 0x08 disconnect, 0x10 more. Each side
toggles its sent counter per data packet and acknowledges every data packet it gets.
Read record: ``05 1F <u16 index>``; index 501 answers the record count. Replies start
``05 06``. Times are seconds since 1970 on the meter's own (zone-less) clock.

Exceptions::

    OneTouchError
    └── PacketError      drop: bad STX/ETX, length or CRC (the packet is ignored)
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Final

from device_drivers.serial_session import SerialDriver
from vigie.contract import CANONICAL_UNIT, Kind, Observation

__all__ = ["OneTouchError", "Packet", "PacketError", "UltraEasyDriver", "crc16_ccitt",
           "decode_packet", "encode_packet"]

log = logging.getLogger(__name__)

STX: Final = 0x02
ETX: Final = 0x03
SENT: Final = 0x01
EXPECT: Final = 0x02
ACK: Final = 0x04
DISCONNECT: Final = 0x08
COUNT_INDEX: Final = 501
REPLY_TIMEOUT: Final = 2.0
_EPOCH = datetime(1970, 1, 1)


class OneTouchError(Exception):
    """Root of the OneTouch errors."""


class PacketError(OneTouchError):
    """A packet failed its framing or CRC check."""


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


@dataclass(frozen=True, slots=True)
class Packet:
    link: int
    message: bytes


def encode_packet(link: int, message: bytes) -> bytes:
    body = bytes([STX, len(message) + 6, link]) + message + bytes([ETX])
    return body + struct.pack("<H", crc16_ccitt(body))


def decode_packet(raw: bytes) -> Packet:
    if len(raw) < 6 or raw[0] != STX or raw[1] != len(raw) or raw[-3] != ETX:
        raise PacketError(f"bad framing: {raw.hex()}")
    (received,) = struct.unpack("<H", raw[-2:])
    if received != crc16_ccitt(raw[:-2]):
        raise PacketError(f"bad CRC {received:04x}, computed {crc16_ccitt(raw[:-2]):04x}")
    return Packet(raw[2], raw[3:-3])


class UltraEasyDriver(SerialDriver):
    """Memory dump of an Ultra Easy: count, then every record, one observation each."""

    family: ClassVar[str] = "onetouch_ultraeasy"
    can_dump_memory: ClassVar[bool] = True

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._out = bytearray()
        self._queue: deque[int] = deque()  # record indexes still to ask
        self._current: int | None = None
        self._sent = False
        self._expect = False
        self._deadline: float | None = None

    def connection_made(self, now: float) -> None:
        self._reset()

    def request_dump(self, now: float) -> None:
        self._queue = deque([COUNT_INDEX])
        self._ask(now)

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def connection_lost(self, reason: str) -> None:
        self._reset()  # records already passed up are whole; nothing is half-done

    def poll(self, now: float) -> list[Observation]:
        if self._deadline is not None and now >= self._deadline:
            log.warning("OneTouch meter stopped answering; dump abandoned")
            self._reset()
        return []

    def data_received(self, data: bytes, now: float) -> list[Observation]:
        self._buf += data
        found: list[Observation] = []
        while (packet := self._next_packet()) is not None:
            found += self._on_packet(packet, now)
        return found

    def _next_packet(self) -> Packet | None:
        start = self._buf.find(bytes([STX]))
        if start < 0:
            self._buf.clear()
            return None
        del self._buf[:start]
        if len(self._buf) < 2 or len(self._buf) < self._buf[1]:
            return None
        raw, self._buf = bytes(self._buf[:self._buf[1]]), self._buf[self._buf[1]:]
        try:
            return decode_packet(raw)
        except PacketError as exc:
            log.debug("OneTouch packet dropped: %s", exc)
            return self._next_packet()

    def _link(self, extra: int = 0) -> int:
        return extra | (SENT if self._sent else 0) | (EXPECT if self._expect else 0)

    def _ask(self, now: float) -> None:
        self._current = self._queue.popleft()
        self._out += encode_packet(self._link(), b"\x05\x1f" + struct.pack("<H", self._current))
        self._sent = not self._sent
        self._deadline = now + REPLY_TIMEOUT

    def _on_packet(self, packet: Packet, now: float) -> list[Observation]:
        if packet.link & ACK or self._current is None:
            return []  # the meter acknowledging our command; the reply follows
        self._expect = not self._expect
        self._out += encode_packet(self._link(ACK), b"")
        found = self._on_reply(packet.message)
        if self._queue:
            self._ask(now)
        else:
            self._current, self._deadline = None, None
        return found

    def _on_reply(self, message: bytes) -> list[Observation]:
        if message[:2] != b"\x05\x06":
            log.warning("OneTouch meter refused record %s", self._current)
            return []
        if self._current == COUNT_INDEX and len(message) >= 4:
            (count,) = struct.unpack_from("<H", message, 2)
            self._queue.extend(range(count))
            return []
        if len(message) < 10 or self._current is None:
            return []
        stamp, value = struct.unpack_from("<II", message, 2)
        return [Observation(Kind.GLUCOSE, float(value), CANONICAL_UNIT[Kind.GLUCOSE],
                            _EPOCH + timedelta(seconds=stamp), float(value), "mg/dL",
                            self._current)]
