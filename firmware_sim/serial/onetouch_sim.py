"""A LifeScan OneTouch Ultra Easy meter on a pty, written without ``device_drivers``.

Wire format (LifeScan shared binary framing, as published by the glucometerutils project):
``STX len link message ETX crc16`` with ``len`` the whole packet length and the CRC-16/CCITT
(poly 0x1021, initial value 0xFFFF) of STX..ETX stored low byte first. The meter
acknowledges each command (link bit 0x04, empty message), then answers it. Command
``05 1F <index u16 LE>``: index 501 answers the record count, other indexes the record
(``05 06 <time u32 LE> <mg/dL u32 LE>``, newest first on a real meter; here in list order).
"""

from __future__ import annotations

import os
import threading
import time
import tty
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["OneTouchPty", "UltraEasyMeterSim"]

_STX, _ETX, _ACK_BIT = 0x02, 0x03, 0x04
_COUNT = 501
_TICK = 0.005


def _crc(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        x = ((crc >> 8) ^ byte) & 0xFF
        x ^= x >> 4
        crc = ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xFFFF
    return crc


def _packet(link: int, message: bytes) -> bytes:
    body = bytes([_STX, len(message) + 6, link]) + message + bytes([_ETX])
    crc = _crc(body)
    return body + bytes([crc & 0xFF, crc >> 8])


@dataclass
class UltraEasyMeterSim:
    """Sans-I/O meter: bytes from the host in, replies out."""

    readings: list[tuple[datetime, int]]
    commands: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def receive(self, data: bytes) -> bytes:
        self._buf += data
        out = b""
        while (message := self._next()) is not None:
            if message:  # an empty message is the host acknowledging our answer
                out += _packet(_ACK_BIT, b"") + _packet(0, self._answer(message))
        return out

    def _next(self) -> bytes | None:
        while self._buf and self._buf[0] != _STX:
            del self._buf[0]
        if len(self._buf) < 2 or len(self._buf) < self._buf[1]:
            return None
        raw, self._buf = bytes(self._buf[:self._buf[1]]), self._buf[self._buf[1]:]
        crc = raw[-2] | raw[-1] << 8
        if raw[-3] != _ETX or crc != _crc(raw[:-2]):
            return self._next()
        return raw[3:-3]

    def _answer(self, message: bytes) -> bytes:
        self.commands += 1
        if len(message) != 4 or message[:2] != b"\x05\x1f":
            return b"\x05\x05"  # not understood
        index = message[2] | message[3] << 8
        if index == _COUNT:
            return b"\x05\x06" + len(self.readings).to_bytes(2, "little")
        if index >= len(self.readings):
            return b"\x05\x05"
        when, mgdl = self.readings[index]
        stamp = int((when - datetime(1970, 1, 1)).total_seconds())
        return b"\x05\x06" + stamp.to_bytes(4, "little") + mgdl.to_bytes(4, "little")


class OneTouchPty:
    """The meter behind a pty master, served by a thread; the host opens ``path``."""

    def __init__(self, meter: UltraEasyMeterSim) -> None:
        self.meter = meter
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pty-onetouch", daemon=True)

    def __enter__(self) -> OneTouchPty:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = os.read(self.master, 4096)
            except OSError:  # no data yet, or no host holds the slave (EIO)
                data = b""
            out = self.meter.receive(data) if data else b""
            if out:
                os.write(self.master, out)
            time.sleep(_TICK)
