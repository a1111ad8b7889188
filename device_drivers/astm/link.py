"""ASTM E1381-02 (CLSI LIS01-A2) data link layer as sans-I/O state machines.

Nothing here reads a port, sleeps or looks at a clock: bytes come in through ``feed``,
time comes in as a number (seconds, any monotonic origin), replies go out through
``data_to_send`` and timers are honoured by calling ``poll`` at or after ``deadline``.

Sections cited (E1381-02 numbering, same content in LIS01-A2 §8):
§6.2 establishment (ENQ -> ACK | NAK busy), §6.2.1 contention, §6.3.1 frames,
§6.3.2 frame number, §6.3.3 checksum, §6.3.4 acknowledgments, §6.3.5 receiver interrupts,
§6.4 termination (EOT), §6.5.1 defective frames, §6.5.2 timeouts, §6.6 restricted characters.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from device_drivers.astm.errors import (
    ChecksumError,
    FrameError,
    FrameNumberError,
    MalformedFrameError,
)

__all__ = [
    "ACK",
    "ENQ",
    "EOT",
    "ETB",
    "ETX",
    "NAK",
    "STX",
    "ContentionLost",
    "Frame",
    "FrameRejected",
    "Link",
    "LinkEvent",
    "MessageDiscarded",
    "MessageReceived",
    "MessageSent",
    "Receiver",
    "SendFailed",
    "Sender",
    "TransferEnded",
    "checksum",
    "encode_frame",
    "encode_message",
    "parse_frame",
]

STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ENQ: Final = 0x05
ACK: Final = 0x06
LF: Final = 0x0A
CR: Final = 0x0D
NAK: Final = 0x15
ETB: Final = 0x17

MAX_TEXT: Final = 240  # §6.3.1: 247 characters a frame, 7 of them framing
MAX_ATTEMPTS: Final = 6  # §6.5.1: a frame is tried six times, then the sender gives up
REPLY_TIMEOUT: Final = 15.0  # §6.5.2: sender waits 15 s for ACK/NAK/EOT
FRAME_TIMEOUT: Final = 30.0  # §6.5.2: receiver waits 30 s for a frame or EOT
BUSY_RETRY: Final = 10.0  # §6.2: after a NAK to ENQ, wait at least 10 s
COMPUTER_BACKOFF: Final = 20.0  # §6.2.1: the computer yields for at least 20 s
INSTRUMENT_RETRY: Final = 1.0  # §6.2.1: the instrument resends ENQ after at least 1 s

Role = Literal["computer", "instrument"]


def checksum(body: bytes) -> str:
    """Two uppercase hex digits: sum of FN..ETB/ETX inclusive, modulo 256 (§6.3.3)."""
    return f"{sum(body) & 0xFF:02X}"


def encode_frame(number: int, text: bytes, *, final: bool) -> bytes:
    """``STX FN text ETB|ETX C1 C2 CR LF`` (§6.3.1); ``number`` is taken modulo 8."""
    body = bytes([0x30 + number % 8]) + text + bytes([ETX if final else ETB])
    return bytes([STX]) + body + checksum(body).encode() + b"\r\n"


def encode_message(records: Sequence[str], first_number: int = 1) -> list[bytes]:
    """Frames of a message, one end frame per record, ETB frames past 240 chars (§6.3.1)."""
    frames: list[bytes] = []
    number = first_number
    for record in records:
        data = (record + "\r").encode("latin-1")
        chunks = [data[i:i + MAX_TEXT] for i in range(0, len(data), MAX_TEXT)]
        for index, chunk in enumerate(chunks):
            frames.append(encode_frame(number, chunk, final=index == len(chunks) - 1))
            number += 1
    return frames


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that passed the checks of §6.3.1 and §6.3.3."""

    number: int
    text: bytes
    final: bool


def _restricted(text: bytes) -> bool:
    """§6.6: no control character but CR in message text (LF, STX... are framing)."""
    return any(b < 0x20 and b != CR for b in text) or 0x7F in text


def parse_frame(raw: bytes) -> Frame:
    """Check and split ``STX FN text ETB|ETX C1 C2 CR LF``; raises a ``FrameError``."""
    if len(raw) < 7 or raw[0] != STX or raw[-2:] != b"\r\n":
        raise MalformedFrameError("frame must start with STX and end with CR LF", raw)
    end = raw[-5]
    if end not in (ETX, ETB):
        raise MalformedFrameError("ETX or ETB missing before the checksum", raw)
    if raw[1] not in b"01234567":
        raise MalformedFrameError(f"frame number {raw[1:2]!r} is not 0-7", raw)
    text = raw[2:-5]
    if _restricted(text):
        raise MalformedFrameError("control character inside the frame text", raw)
    received = raw[-4:-2].decode("latin-1").upper()
    computed = checksum(raw[1:-4])
    if received != computed:
        raise ChecksumError(received, computed, raw)
    return Frame(raw[1] - 0x30, text, end == ETX)


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete message (header to terminator record), each record without its CR."""

    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A defective frame was NAKed (§6.5.1); nothing of it was passed up."""

    error: FrameError


@dataclass(frozen=True, slots=True)
class MessageDiscarded:
    """An incomplete message was dropped (EOT, timeout, port loss, or a stray record)."""

    reason: str
    records: int


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """The receiver is back to neutral (§6.4): ``reason`` is eot, timeout or port loss."""

    reason: str


@dataclass(frozen=True, slots=True)
class MessageSent:
    """Every frame of a queued message was acknowledged."""

    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SendFailed:
    """A queued message was given up (timeout, retry limit); it is no longer queued."""

    records: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ContentionLost:
    """Both sides sent ENQ and the instrument won (§6.2.1); retry at ``retry_at``."""

    retry_at: float


LinkEvent = (MessageReceived | FrameRejected | MessageDiscarded | TransferEnded | MessageSent
             | SendFailed | ContentionLost)


# -------------------------------------------------------------------------- receiver


class _RState(enum.Enum):
    NEUTRAL = "neutral"
    WAITING = "waiting"  # transfer phase, between frames
    IN_FRAME = "in_frame"


class Receiver:
    """Receiver role of E1381: answers ENQ, checks frames, rebuilds messages.

    Messages are passed up whole (at their ``L`` record); a message cut by EOT or the
    receiver timer is discarded (§6.5.2), so a caller never sees half a message.
    """

    def __init__(self, *, frame_timeout: float = FRAME_TIMEOUT, max_frame: int = 65536) -> None:
        self.frame_timeout = frame_timeout
        self.max_frame = max_frame
        self.busy = False  # when True, ENQ is answered with NAK (§6.2)
        self._out = bytearray()
        self._state = _RState.NEUTRAL
        self._buf = bytearray()
        self._garbled = False
        self._last: int | None = None
        self._partial = ""
        self._records: list[str] = []
        self._deadline: float | None = None

    @property
    def idle(self) -> bool:
        """True in the neutral state (no transfer in progress)."""
        return self._state is _RState.NEUTRAL

    @property
    def deadline(self) -> float | None:
        """When ``poll`` must next be called, or None."""
        return self._deadline

    def data_to_send(self) -> bytes:
        """Replies (ACK/NAK) produced so far, removed from the outbox."""
        out, self._out = bytes(self._out), bytearray()
        return out

    def feed(self, data: bytes, now: float) -> list[LinkEvent]:
        """Take bytes from the line; return what happened."""
        events: list[LinkEvent] = []
        for byte in data:
            self._byte(byte, now, events)
        return events

    def poll(self, now: float) -> list[LinkEvent]:
        """Apply the 30 s receiver timer (§6.5.2)."""
        events: list[LinkEvent] = []
        if self._deadline is not None and now >= self._deadline:
            self._end("timeout", events)
        return events

    def abort(self, reason: str) -> list[LinkEvent]:
        """Forget any transfer (port closed): the incomplete message is discarded."""
        events: list[LinkEvent] = []
        if not self.idle:
            self._end(reason, events)
        return events

    def _byte(self, byte: int, now: float, events: list[LinkEvent]) -> None:
        if self._state is _RState.NEUTRAL:
            if byte == ENQ:  # §6.2: only ENQ leaves the neutral state
                self._on_enq(now, events)
        elif byte == EOT:
            self._end("eot", events)
        elif self._state is _RState.IN_FRAME:
            self._in_frame(byte, now, events)
        elif byte == STX:
            self._state, self._buf, self._garbled = _RState.IN_FRAME, bytearray([STX]), False
        # Anything else between frames is noise. ENQ too: a sender that restarts after
        # its own timeout sends EOT first (§6.5.2), so an ENQ here is more likely a
        # damaged STX, and ACKing it would acknowledge a frame never received.

    def _on_enq(self, now: float, events: list[LinkEvent]) -> None:
        if self.busy:
            self._out.append(NAK)
            return
        self._out.append(ACK)
        self._state, self._last = _RState.WAITING, None
        self._deadline = now + self.frame_timeout

    def _in_frame(self, byte: int, now: float, events: list[LinkEvent]) -> None:
        # A sender never starts a frame or a session before our reply, so STX or ENQ
        # inside a frame is damage: the frame is NAKed at its LF (§6.5.1).
        self._garbled = self._garbled or byte in (STX, ENQ)
        self._buf.append(byte)
        if byte == LF:
            self._on_frame(bytes(self._buf), now, events)
        elif len(self._buf) > self.max_frame:
            self._reply(NAK, now)
            events.append(FrameRejected(MalformedFrameError("frame too long", bytes(self._buf))))

    def _reply(self, code: int, now: float) -> None:
        self._out.append(code)
        self._state, self._buf = _RState.WAITING, bytearray()
        self._deadline = now + self.frame_timeout

    def _on_frame(self, raw: bytes, now: float, events: list[LinkEvent]) -> None:
        try:
            if self._garbled:
                raise MalformedFrameError("STX or ENQ inside a frame", raw)
            frame = parse_frame(raw)
            repeat = self._is_repeat(frame, raw)
        except FrameError as exc:
            self._reply(NAK, now)
            events.append(FrameRejected(exc))
            return
        self._reply(ACK, now)
        if not repeat:  # §6.3.2: a repeat of the last accepted frame is ACKed, not kept
            self._last = frame.number
            self._take(frame, events)

    def _is_repeat(self, frame: Frame, raw: bytes) -> bool:
        expected = 1 if self._last is None else (self._last + 1) % 8
        if frame.number == expected:
            return False
        if frame.number == self._last:
            return True
        raise FrameNumberError(chr(0x30 + frame.number), expected, raw)

    def _take(self, frame: Frame, events: list[LinkEvent]) -> None:
        self._partial += frame.text.decode("latin-1")
        if not frame.final:
            return
        parts, self._partial = self._partial.split("\r"), ""
        for record in parts:
            if record:
                self._add_record(record, events)

    def _add_record(self, record: str, events: list[LinkEvent]) -> None:
        # E1394 §5.1: a message runs from its H record to its L record. Records outside
        # that span are dropped, so a message is never passed up without its header.
        if record.startswith("H"):
            if self._records:
                events.append(MessageDiscarded("header before terminator", len(self._records)))
            self._records = [record]
        elif not self._records:
            events.append(MessageDiscarded("record outside a message", 1))
        else:
            self._records.append(record)
            if record.startswith("L"):
                events.append(MessageReceived(tuple(self._records)))
                self._records = []

    def _end(self, reason: str, events: list[LinkEvent]) -> None:
        if self._records or self._partial:
            events.append(MessageDiscarded(reason, len(self._records)))
        self._records, self._partial, self._buf = [], "", bytearray()
        self._state, self._last, self._deadline = _RState.NEUTRAL, None, None
        events.append(TransferEnded(reason))


# ---------------------------------------------------------------------------- sender


class _SState(enum.Enum):
    IDLE = "idle"
    WAIT_ENQ_REPLY = "wait_enq_reply"
    WAIT_FRAME_REPLY = "wait_frame_reply"


class Sender:
    """Sender role of E1381: establishment, frames with retries, termination.

    ``role`` decides contention (§6.2.1): a computer yields to the instrument and waits
    20 s; an instrument keeps priority and resends ENQ after 1 s.
    """

    def __init__(self, *, role: Role = "computer", reply_timeout: float = REPLY_TIMEOUT,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.role: Role = role
        self.reply_timeout = reply_timeout
        self.max_attempts = max_attempts
        self._queue: deque[tuple[str, ...]] = deque()
        self._out = bytearray()
        self._state = _SState.IDLE
        self._not_before = 0.0
        self._deadline: float | None = None
        self._frames: list[bytes] = []
        self._index = 0
        self._attempts = 0
        self._number = 1

    @property
    def active(self) -> bool:
        """True while the sender owns the line (establishment or transfer)."""
        return self._state is not _SState.IDLE

    @property
    def pending(self) -> int:
        """Number of messages queued, including the one being sent."""
        return len(self._queue)

    @property
    def deadline(self) -> float | None:
        """When ``poll`` must next be called, or None."""
        if self._state is _SState.IDLE:
            return self._not_before if self._queue else None
        return self._deadline

    def send(self, records: Sequence[str]) -> None:
        """Queue a message (records without CR); it goes out on the next ``poll``."""
        self._queue.append(tuple(records))

    def data_to_send(self) -> bytes:
        """Bytes to write to the line, removed from the outbox."""
        out, self._out = bytes(self._out), bytearray()
        return out

    def poll(self, now: float) -> list[LinkEvent]:
        """Start a transfer when allowed; apply the 15 s reply timer (§6.5.2)."""
        events: list[LinkEvent] = []
        if self._state is _SState.IDLE:
            if self._queue and now >= self._not_before:
                self._send_enq(now)
        elif self._deadline is not None and now >= self._deadline:
            self._give_up("no reply within the timeout", now, events)
        return events

    def feed(self, data: bytes, now: float) -> list[LinkEvent]:
        """Take replies from the line (each byte is one reply)."""
        events: list[LinkEvent] = []
        for byte in data:
            if self._state is _SState.WAIT_ENQ_REPLY:
                self._on_enq_reply(byte, now, events)
            elif self._state is _SState.WAIT_FRAME_REPLY:
                self._on_frame_reply(byte, now, events)
        return events

    def _send_enq(self, now: float) -> None:
        self._out.append(ENQ)
        self._state, self._deadline = _SState.WAIT_ENQ_REPLY, now + self.reply_timeout

    def _on_enq_reply(self, byte: int, now: float, events: list[LinkEvent]) -> None:
        if byte == ACK:
            self._number = 1  # §6.3.2: the first frame after establishment is 1
            self._start_message(now)
        elif byte == NAK:  # §6.2: receiver busy
            self._state, self._not_before = _SState.IDLE, now + BUSY_RETRY
        elif byte == ENQ:
            self._contention(now, events)

    def _contention(self, now: float, events: list[LinkEvent]) -> None:
        wait = COMPUTER_BACKOFF if self.role == "computer" else INSTRUMENT_RETRY
        self._state, self._not_before = _SState.IDLE, now + wait
        if self.role == "computer":
            events.append(ContentionLost(self._not_before))

    def _start_message(self, now: float) -> None:
        self._frames = encode_message(self._queue[0], self._number)
        self._number += len(self._frames)
        self._index = 0
        self._send_frame(now, first_try=True)

    def _send_frame(self, now: float, *, first_try: bool) -> None:
        self._attempts = 1 if first_try else self._attempts + 1
        self._out += self._frames[self._index]
        self._state, self._deadline = _SState.WAIT_FRAME_REPLY, now + self.reply_timeout

    def _on_frame_reply(self, byte: int, now: float, events: list[LinkEvent]) -> None:
        # §6.3.5: EOT is a receiver interrupt request, which a sender may ignore (taken as
        # ACK); §6.3.4: any other character than ACK is taken as a NAK.
        if byte in (ACK, EOT):
            self._next_frame(now, events)
        elif self._attempts >= self.max_attempts:
            self._give_up(f"frame NAKed {self._attempts} times", now, events)
        else:
            self._send_frame(now, first_try=False)

    def _next_frame(self, now: float, events: list[LinkEvent]) -> None:
        self._index += 1
        if self._index < len(self._frames):
            self._send_frame(now, first_try=True)
            return
        events.append(MessageSent(self._queue.popleft()))
        if self._queue:
            self._start_message(now)
        else:
            self._terminate(now)

    def _terminate(self, now: float) -> None:
        self._out.append(EOT)  # §6.4
        self._state, self._deadline, self._not_before = _SState.IDLE, None, now

    def _give_up(self, reason: str, now: float, events: list[LinkEvent]) -> None:
        events.append(SendFailed(self._queue.popleft(), reason))
        self._terminate(now)


# ------------------------------------------------------------------------------ link


class Link:
    """Both roles on one line, as a computer system (or instrument) runs them.

    While the sender owns the line, bytes are its replies; otherwise they go to the
    receiver. On contention the losing side's ENQ is handed to the receiver (§6.2.1).
    """

    def __init__(self, *, role: Role = "computer", receiver: Receiver | None = None,
                 sender: Sender | None = None) -> None:
        self.receiver = receiver or Receiver()
        self.sender = sender or Sender(role=role)

    @property
    def deadline(self) -> float | None:
        """Earliest time at which ``poll`` must be called."""
        times = [t for t in (self.receiver.deadline, self.sender.deadline) if t is not None]
        return min(times) if times else None

    def send(self, records: Sequence[str]) -> None:
        """Queue a message for the sender role."""
        self.sender.send(records)

    def feed(self, data: bytes, now: float) -> list[LinkEvent]:
        """Route each byte to the role that owns the line."""
        events: list[LinkEvent] = []
        for byte in data:
            if self.sender.active:
                got = self.sender.feed(bytes([byte]), now)
                events += got
                if any(isinstance(e, ContentionLost) for e in got):
                    events += self.receiver.feed(bytes([byte]), now)
            else:
                events += self.receiver.feed(bytes([byte]), now)
        return events

    def poll(self, now: float) -> list[LinkEvent]:
        """Run both timers; the sender may only start while the receiver is neutral."""
        events = self.receiver.poll(now)
        if self.receiver.idle:
            events += self.sender.poll(now)
        return events

    def data_to_send(self) -> bytes:
        """Everything both roles want written."""
        return self.receiver.data_to_send() + self.sender.data_to_send()
