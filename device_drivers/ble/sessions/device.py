"""One connection to one health device, as named steps over bleak's public API.

``DeviceSession.run`` goes through::

    connect (bond when the profile needs it) -> read clock -> subscribe
        -> records   (RACP: "records >= last committed + 1", delivered in chunks)
        |  indications (delivered one by one until the device is idle)
    -> disconnect (always, bounded)

Each step has its own timeout and the whole session a ceiling (``max_session_s``), so a link
can never stay open forever. Failures come out as ``BleSessionError`` subclasses whose
``kind`` drives the caller's backoff.

What was received before a failure is still delivered: a record that arrived whole is a
record, and the resume point handed to the next session is whatever the sink last committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice

from device_drivers.ble.characteristics import decode_characteristic
from device_drivers.ble.errors import BleDecodeError
from device_drivers.ble.glucose import decode_glucose_context, merge_glucose_context
from device_drivers.ble.racp import (
    RacpOpcode,
    RacpResult,
    decode_racp_response,
    request_abort,
    request_records,
    request_records_from,
)
from device_drivers.ble.reader import date_time_from_bytes
from device_drivers.ble.sessions.errors import (
    BleSessionError,
    DeliveryRefused,
    DeviceGone,
    ProtocolError,
    SessionTimeout,
    translate,
)
from device_drivers.ble.sessions.profiles import (
    CLOCK_CHARACTERISTICS,
    GLUCOSE_CONTEXT,
    PROFILES,
    RACP,
    Profile,
    ProfileSpec,
)
from vigie.contract import Kind, Observation

__all__ = [
    "ClockSample",
    "Delivery",
    "DeviceSession",
    "KnownDevice",
    "SessionReport",
    "SessionSettings",
    "SessionSink",
    "raise_if_cancelled",
]

log = logging.getLogger(__name__)

_LAST_SEQUENCE = 0xFFFF  # GLS sequence numbers are u16
_LOST = "lost"


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """A device the gateway reads: its address, its id in Vigie, its profile."""

    address: str
    device_id: str
    profile: Profile

    @property
    def spec(self) -> ProfileSpec:
        return PROFILES[self.profile]


@dataclass(frozen=True, slots=True)
class ClockSample:
    """The device's current time and the gateway clock at the middle of the read."""

    device_time: datetime  # naive: the device's local wall clock
    gateway_time: datetime  # aware UTC
    characteristic: str

    def offset_s(self, zone: tzinfo) -> float:
        """Device clock minus gateway clock, reading the device time in ``zone``.

        Rounded to the second: Date Time has a one-second resolution.
        """
        local = self.device_time.replace(tzinfo=zone)
        return float(round((local - self.gateway_time).total_seconds()))


@dataclass(frozen=True, slots=True)
class Delivery:
    """Observations for the sink. ``last_sequence``: the highest record number inside, for
    stored-record devices (the sink commits it with them as the resume point)."""

    device: KnownDevice
    observations: tuple[Observation, ...]
    last_sequence: int | None = None
    from_records: bool = False


class SessionSink(Protocol):
    """Where a session hands what it read. ``deliver`` returns once it is durable."""

    def resume_after(self, device: KnownDevice) -> int | None:
        """Sequence number of the last record already committed for ``device``, or None."""

    async def deliver(self, delivery: Delivery) -> None:
        """Commit; raise ``DeliveryRefused`` when it cannot be taken now."""

    async def clock_measured(self, device: KnownDevice, sample: ClockSample) -> None:
        """The device exposed its current time."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    connect_timeout_s: float = 10.0
    step_timeout_s: float = 5.0  # one GATT read/write/subscribe
    record_timeout_s: float = 5.0  # longest silence inside a RACP transfer
    idle_s: float = 2.0  # an indicating device quiet this long has nothing more
    max_session_s: float = 300.0  # ceiling for one connection: stale links are closed
    racp_chunk: int = 50  # records per commit during a transfer
    disconnect_timeout_s: float = 5.0


@dataclass
class SessionReport:
    delivered: int = 0
    last_sequence: int | None = None
    clock: ClockSample | None = None
    malformed: int = 0
    held: list[Delivery] = field(default_factory=list)  # confirmed but refused by the sink


ClientBackend = type[BaseBleakClient] | None
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that library code swallowed.

    On Python 3.11 ``asyncio.wait_for`` (used inside bumble and bleak backends) drops a
    cancellation that races with the completion of what it waits for (CPython gh-86296): the
    task stays "cancelling" but runs on, and a worker loop would then never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class DeviceSession:
    """One connection to ``device``; not reusable (make one per connection)."""

    def __init__(self, device: KnownDevice, target: BLEDevice | str, sink: SessionSink, *,
                 backend: ClientBackend = None, settings: SessionSettings | None = None,
                 clock: Clock = _utc_now) -> None:
        self.device = device
        self.spec = device.spec
        self.settings = settings or SessionSettings()
        self.report = SessionReport()
        self._sink = sink
        self._clock = clock
        self._events: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._client = BleakClient(target, self._on_disconnect, pair=self.spec.bond,
                                   timeout=self.settings.connect_timeout_s, backend=backend)
        self._link_up = False

    # -- the session -------------------------------------------------------------

    async def run(self) -> SessionReport:
        """Connect, read, disconnect. Raises a ``BleSessionError``; the report is kept on
        ``self.report`` either way."""
        try:
            async with asyncio.timeout(self.settings.max_session_s):
                await self._connect()
                await self._read_clock()
                await self._subscribe()
                if self.spec.records:
                    await self._sync_records()
                else:
                    await self._collect_indications()
        except TimeoutError as exc:
            if isinstance(exc, BleSessionError):
                raise
            raise SessionTimeout("session exceeded its ceiling", step="session",
                                 address=self.device.address) from exc
        finally:
            await self._close()
            raise_if_cancelled()
        return self.report

    def _step(self, name: str) -> contextlib.AbstractContextManager[None]:
        return translate(name, self.device.address, lambda: self._client.is_connected)

    async def _io(self, name: str, call: Awaitable[Any], timeout: float | None = None) -> Any:
        with self._step(name):
            async with asyncio.timeout(timeout or self.settings.step_timeout_s):
                return await call

    # -- steps -------------------------------------------------------------------

    async def _connect(self) -> None:
        # bleak's own timeout covers the connection; ours is a guard for a backend that hangs.
        await self._io("connect", self._client.connect(),
                       self.settings.connect_timeout_s + self.settings.step_timeout_s)
        self._link_up = True
        log.debug("%s: connected (%s)", self.device.device_id, self.device.profile)

    async def _read_clock(self) -> None:
        """Read the device's current time where it exposes one (not fatal when it fails)."""
        for uuid in CLOCK_CHARACTERISTICS:
            char = self._characteristic(uuid)
            if char is None or "read" not in char.properties:
                continue
            try:
                sample = await self._sample_clock(char)
            except BleSessionError as exc:
                log.warning("%s: clock read failed: %s", self.device.device_id, exc)
                if isinstance(exc, DeviceGone):
                    raise
                continue
            if sample is not None:
                self.report.clock = sample
                await self._sink.clock_measured(self.device, sample)
                return

    async def _sample_clock(self, char: BleakGATTCharacteristic) -> ClockSample | None:
        before = self._clock()
        raw = await self._io("read clock", self._client.read_gatt_char(char))
        after = self._clock()
        value = date_time_from_bytes(bytes(raw[:7])) if len(raw) >= 7 else None
        if value is None or value.when is None:
            return None
        return ClockSample(value.when, before + (after - before) / 2, char.uuid)

    async def _subscribe(self) -> None:
        for uuid in self.spec.measurements:
            await self._subscribe_to(uuid, required=True)
        for uuid in self.spec.optional:
            await self._subscribe_to(uuid, required=False)
        if self.spec.records:
            await self._subscribe_to(RACP, required=True)

    async def _subscribe_to(self, uuid: str, *, required: bool) -> None:
        char = self._characteristic(uuid)
        if char is None:
            if required:
                raise ProtocolError(f"characteristic {uuid} missing", step="subscribe",
                                    address=self.device.address)
            return

        def enqueue(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            self._events.put_nowait((uuid, bytes(data)))

        await self._io(f"subscribe {uuid[4:8]}", self._client.start_notify(char, enqueue))

    def _characteristic(self, uuid: str) -> BleakGATTCharacteristic | None:
        return self._client.services.get_characteristic(uuid)

    # -- indicating devices ------------------------------------------------------

    async def _collect_indications(self) -> None:
        """Deliver each measurement as it comes until the device is idle or leaves.

        The BLE stack confirmed each indication before we see it: a refusal by the sink
        cannot be told to the device, so refused deliveries are held for the caller.
        """
        while True:
            try:
                async with asyncio.timeout(self.settings.idle_s):
                    uuid, data = await self._events.get()
            except TimeoutError:
                return  # idle: nothing more to read
            if uuid == _LOST:
                return  # the device hung up after sending: a normal end for many meters
            observations = self._decode(uuid, data)
            if observations:
                await self._deliver_held_on_refusal(Delivery(self.device, tuple(observations)))

    async def _deliver_held_on_refusal(self, delivery: Delivery) -> None:
        if self.report.held:
            self.report.held.append(delivery)  # keep the order behind the first refusal
            return
        try:
            await self._sink.deliver(delivery)
            self.report.delivered += len(delivery.observations)
        except DeliveryRefused:
            self.report.held.append(delivery)

    def _decode(self, uuid: str, data: bytes) -> list[Observation]:
        try:
            return decode_characteristic(uuid, data)
        except BleDecodeError as exc:
            self.report.malformed += 1
            log.error("%s: dropped malformed %s value: %s", self.device.device_id,
                      uuid[4:8], exc)
            return []

    # -- stored records (RACP) ---------------------------------------------------

    async def _sync_records(self) -> None:
        """Transfer the records after the last committed one (GLS 3.9, 'records >= N')."""
        resume = self._sink.resume_after(self.device)
        if resume is not None and resume >= _LAST_SEQUENCE:
            log.warning("%s: sequence numbers exhausted", self.device.device_id)
            return
        request = request_records() if resume is None else request_records_from(resume + 1)
        batch = _RecordBatch(resume)
        await self._io("RACP request", self._client.write_gatt_char(RACP, request, response=True))
        try:
            await self._receive_records(batch)
        except DeliveryRefused:
            await self._abort_transfer()
            raise

    async def _receive_records(self, batch: _RecordBatch) -> None:
        while True:
            uuid, data = await self._next_record_event()
            if uuid == _LOST:
                await self._flush(batch, final=True)
                raise DeviceGone("link lost during the RACP transfer", step="RACP transfer",
                                 address=self.device.address)
            if uuid == RACP:
                await self._finish(batch, data)
                return
            self._add_record(batch, uuid, data)
            if batch.ready(self.settings.racp_chunk):
                await self._flush(batch, final=False)

    async def _next_record_event(self) -> tuple[str, bytes]:
        try:
            async with asyncio.timeout(self.settings.record_timeout_s):
                return await self._events.get()
        except TimeoutError:
            await self._abort_transfer()
            raise SessionTimeout("RACP transfer stalled", step="RACP transfer",
                                 address=self.device.address) from None

    def _add_record(self, batch: _RecordBatch, uuid: str, data: bytes) -> None:
        if uuid == GLUCOSE_CONTEXT:
            try:
                batch.contexts.append(decode_glucose_context(data))
            except BleDecodeError as exc:
                self.report.malformed += 1
                log.error("%s: dropped malformed context: %s", self.device.device_id, exc)
        batch.add(self._decode(uuid, data))

    async def _finish(self, batch: _RecordBatch, data: bytes) -> None:
        with self._step("RACP response"):
            response = decode_racp_response(data)
        if not isinstance(response, RacpResult) or \
                response.request_opcode != RacpOpcode.REPORT_STORED_RECORDS:
            raise ProtocolError(f"unexpected RACP response {response}", step="RACP response",
                                address=self.device.address)
        await self._flush(batch, final=True)
        if not response.ok:
            code = int(response.code)
            raise ProtocolError(f"RACP refused the request (code {code})",
                                step="RACP response", address=self.device.address, code=code)

    async def _flush(self, batch: _RecordBatch, *, final: bool) -> None:
        observations, last = batch.take(final=final)
        if not observations:
            return
        await self._sink.deliver(Delivery(self.device, tuple(observations), last, True))
        batch.committed = last
        self.report.delivered += len(observations)
        self.report.last_sequence = last

    async def _abort_transfer(self) -> None:
        """Ask the meter to stop (RACP Abort, GLS 3.9.1.3); best effort, bounded."""
        if not self._client.is_connected:
            return
        with contextlib.suppress(BleSessionError):
            await self._io("RACP abort",
                           self._client.write_gatt_char(RACP, request_abort(), response=True))

    # -- closing -----------------------------------------------------------------

    def _on_disconnect(self, _client: BleakClient) -> None:
        if self._link_up:
            self._link_up = False
            self._events.put_nowait((_LOST, b""))

    async def _close(self) -> None:
        """Disconnect, bounded; a failure here only means the link is already gone."""
        self._link_up = False
        try:
            async with asyncio.timeout(self.settings.disconnect_timeout_s):
                await self._client.disconnect()
        except Exception as exc:  # closing must never fail the caller
            log.debug("%s: disconnect: %r", self.device.device_id, exc)


class _RecordBatch:
    """Records received but not yet delivered, with their contexts (GLS 3.3).

    A measurement whose 'context follows' flag is set waits for its context before being
    delivered, unless the transfer is over.
    """

    def __init__(self, committed: int | None) -> None:
        self.committed = committed
        self.observations: list[Observation] = []
        self.contexts: list[Any] = []

    def add(self, observations: list[Observation]) -> None:
        for obs in observations:
            seq = obs.sequence
            if seq is not None and self.committed is not None and seq <= self.committed:
                continue  # the meter resent a record we already hold: no duplicates
            self.observations.append(obs)

    def ready(self, chunk: int) -> bool:
        return len(self.observations) >= chunk

    def take(self, *, final: bool) -> tuple[list[Observation], int | None]:
        keep: list[Observation] = []
        ready = list(self.observations)
        if not final and ready and self._awaits_context(ready[-1]):
            keep = [o for o in ready if o.sequence == ready[-1].sequence]
            ready = [o for o in ready if o.sequence != ready[-1].sequence]
        sequences = [o.sequence for o in ready if o.sequence is not None]
        merged = merge_glucose_context(ready, self.contexts)
        self.observations = keep
        self.contexts = [c for c in self.contexts
                         if any(o.sequence == c.sequence for o in keep)]
        return merged, max(sequences, default=self.committed)

    def _awaits_context(self, obs: Observation) -> bool:
        return (obs.kind is Kind.GLUCOSE and bool(obs.extra.get("context_follows"))
                and not any(c.sequence == obs.sequence for c in self.contexts))
