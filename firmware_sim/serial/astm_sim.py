"""Instrument side of ASTM, written from E1381-02 / E1394-97 without device_drivers.

Everything here is sans-I/O: ``InstrumentSender`` turns queued messages into bytes and
reacts to replies and to time; the devices build E1394 messages. ``pty_device`` puts
them on a pseudo-terminal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "Faults",
    "GlucometerSim",
    "InstrumentSender",
    "PocAnalyzerSim",
    "PocTest",
    "Timers",
    "astm_escape",
    "sim_frame",
    "sim_frames",
]

_STX, _ETX, _EOT, _ENQ, _ACK, _NAK, _ETB = 2, 3, 4, 5, 6, 0x15, 0x17


def sim_frame(number: int, text: bytes, last: bool) -> bytes:
    """E1381 §6.3.1 frame; checksum §6.3.3 (low byte of the sum, two upper hex digits)."""
    body = str(number % 8).encode() + text + bytes([_ETX if last else _ETB])
    total = 0
    for byte in body:
        total = (total + byte) % 256
    return bytes([_STX]) + body + hex(total)[2:].upper().zfill(2).encode() + b"\r\n"


def sim_frames(records: list[str], first: int) -> list[bytes]:
    """One end frame per record, 240-character intermediate frames before it (§6.3.1)."""
    out: list[bytes] = []
    for record in records:
        data = record.encode("latin-1") + b"\r"
        pieces = [data[k:k + 240] for k in range(0, len(data), 240)]
        for k, piece in enumerate(pieces):
            out.append(sim_frame(first + len(out), piece, k == len(pieces) - 1))
    return out


def astm_escape(text: str, field_d: str = "|", repeat: str = "\\", component: str = "^",
                escape: str = "&") -> str:
    """E1394 §5.5 escapes for text placed inside a field."""
    swaps = {escape: f"{escape}E{escape}", field_d: f"{escape}F{escape}",
             repeat: f"{escape}R{escape}", component: f"{escape}S{escape}"}
    return "".join(swaps.get(ch, ch) for ch in text)


@dataclass
class Timers:
    """E1381 §6.5.2 timers (scaled down in tests) and the retry policy."""

    reply: float = 15.0
    busy: float = 10.0
    contention: float = 1.0
    retry: float = 10.0
    max_tries: int = 6


@dataclass
class InstrumentSender:
    """Sender role of an instrument (E1381 §6.2-§6.4), with the instrument's priority.

    Messages stay queued until every frame is acknowledged; a failed session (timeout,
    six NAKs) ends with EOT and the whole message goes again later.
    """

    timers: Timers = field(default_factory=Timers)
    queue: list[list[str]] = field(default_factory=list)
    delivered: list[list[str]] = field(default_factory=list)
    phase: str = "idle"
    wake: float = 0.0
    frames: list[bytes] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)  # index of each message's last frame
    pos: int = 0
    tries: int = 0
    frames_sent: int = 0

    def add(self, records: list[str]) -> None:
        self.queue.append(list(records))

    def reset(self) -> None:
        """The line went away: forget the session, keep the queue."""
        self.phase, self.pos, self.frames = "idle", 0, []

    def step(self, now: float) -> bytes:
        """Timers: start a session when due, give up a session after a silent 15 s."""
        if self.phase == "idle":
            if self.queue and now >= self.wake:
                self.phase, self.wake = "enq", now + self.timers.reply
                return bytes([_ENQ])
            return b""
        if now >= self.wake:
            return self._fail(now)
        return b""

    def receive(self, data: bytes, now: float) -> bytes:
        out = b""
        for byte in data:
            if self.phase == "enq":
                out += self._on_enq_reply(byte, now)
            elif self.phase == "frames":
                out += self._on_frame_reply(byte, now)
        return out

    def _on_enq_reply(self, byte: int, now: float) -> bytes:
        if byte == _ACK:
            self._build()
            return self._emit(now, fresh=True)
        if byte == _NAK:
            self.phase, self.wake = "idle", now + self.timers.busy
        elif byte == _ENQ:  # contention: the instrument keeps priority, retries after 1 s
            self.phase, self.wake = "idle", now + self.timers.contention
        return b""

    def _build(self) -> None:
        self.frames, self.ends, self.pos = [], {}, 0
        for message in self.queue:
            self.frames += sim_frames(message, len(self.frames) + 1)
            self.ends[len(self.frames) - 1] = 1

    def _emit(self, now: float, fresh: bool) -> bytes:
        self.tries = 1 if fresh else self.tries + 1
        self.phase, self.wake = "frames", now + self.timers.reply
        self.frames_sent += 1
        return self.frames[self.pos]

    def _on_frame_reply(self, byte: int, now: float) -> bytes:
        # §6.3.5: EOT in reply is a receiver interrupt; this instrument ignores it.
        if byte in (_ACK, _EOT):
            if self.pos in self.ends:
                self.delivered.append(self.queue.pop(0))
            self.pos += 1
            if self.pos == len(self.frames):
                self.phase, self.wake, self.frames = "idle", now, []
                return bytes([_EOT])
            return self._emit(now, fresh=True)
        if self.tries >= self.timers.max_tries:  # §6.5.1: six tries, then EOT
            return self._fail(now)
        return self._emit(now, fresh=False)

    def _fail(self, now: float) -> bytes:
        self.phase, self.wake, self.frames, self.pos = "idle", now + self.timers.retry, [], 0
        return bytes([_EOT])


@dataclass
class Faults:
    """Switchable faults of the simulated line and device.

    ``noise``: probability that a frame leaves with one bit flipped; ``nak_storm``:
    number of host replies the device hears as NAK; ``silent_after``: the device goes
    quiet after that many frames (mid-transfer); ``unplug_after``: the cable is pulled
    (pty master closed) after that many frames.
    """

    noise: float = 0.0
    nak_storm: int = 0
    silent_after: int | None = None
    unplug_after: int | None = None
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def on_output(self, data: bytes) -> bytes:
        if len(data) > 1 and self.noise and self.rng.random() < self.noise:
            buf = bytearray(data)
            buf[self.rng.randrange(len(buf))] ^= 1 << self.rng.randrange(8)
            return bytes(buf)
        return data

    def on_input(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self.nak_storm > 0 and byte == _ACK:
                self.nak_storm -= 1
                byte = _NAK
            out.append(byte)
        return bytes(out)


def _header(sender: str, now: datetime) -> str:
    return f"H|\\^&|||{sender}|||||||P|LIS2-A2|{now:%Y%m%d%H%M%S}"


@dataclass
class GlucometerSim:
    """A glucometer that dumps its whole memory (one message) when a session opens."""

    readings: list[tuple[datetime, float]]
    unit: str = "mg/dL"
    patient_id: str = "PAT-001"
    serial_number: str = "GM0001"

    def dump(self, now: datetime) -> list[str]:
        records = [_header(f"SimGluco^1.0^{self.serial_number}", now),
                   f"P|1||{astm_escape(self.patient_id)}"]
        for n, (when, value) in enumerate(self.readings, start=1):
            records.append(f"R|{n}|^^^GLU|{value:g}|{self.unit}||||F||||{when:%Y%m%d%H%M%S}")
        return [*records, "L|1|N"]


@dataclass(frozen=True)
class PocTest:
    """One test run by the analyzer: code, value, unit, abnormal flag."""

    code: str
    value: str
    unit: str
    flag: str = "N"
    reference: str = ""


@dataclass
class PocAnalyzerSim:
    """A POC analyzer sending each result (one message) when its test completes."""

    tests: list[PocTest]
    duration: float = 1.0  # seconds per test
    patient_id: str = "PAT-002"
    start: datetime = datetime(2024, 3, 1, 10, 0, 0)
    sent: int = 0

    def due(self, elapsed: float) -> list[list[str]]:
        """Messages for tests completed after ``elapsed`` seconds and not yet sent."""
        out = []
        while self.sent < len(self.tests) and elapsed >= (self.sent + 1) * self.duration:
            self.sent += 1
            out.append(self.message(self.sent))
        return out

    def message(self, n: int) -> list[str]:
        test = self.tests[n - 1]
        done = self.start + timedelta(seconds=n * 60)
        return [_header("SimPOC^2.1^AN77", done), f"P|1||{astm_escape(self.patient_id)}",
                f"O|1|S{n:04d}||^^^{test.code}|R",
                f"R|1|^^^{test.code}|{astm_escape(test.value)}|{test.unit}|"
                f"{astm_escape(test.reference)}|{test.flag}||F||||{done:%Y%m%d%H%M%S}",
                "L|1|N"]
