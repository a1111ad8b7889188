"""The gateway's BLE central: one watched scanner, one worker per known device.

::

    scanner (health service UUIDs) --advertisement--> worker(device) --> DeviceSession
       ^ watchdog: silent for ``scanner_silence_s`` -> stopped and started again
       ^ start failures -> backoff, and ``on_stack_failure`` (e.g. reopen the HCI transport)

A worker connects when its device advertises (health devices advertise after a measurement
or a button press), runs one session, then waits according to the outcome: nothing after a
success, a backoff by error kind after a failure, and in every case a *new* advertisement
before connecting again. Links are limited to ``max_links`` at a time. Every state is left by
a timeout: nothing here ever needs a restart of the process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from device_drivers.ble.sessions.backoff import Backoff, BackoffPolicy
from device_drivers.ble.sessions.device import (
    ClientBackend,
    Delivery,
    DeviceSession,
    KnownDevice,
    SessionSettings,
    SessionSink,
    raise_if_cancelled,
)
from device_drivers.ble.sessions.errors import BleSessionError, DeliveryRefused, ErrorKind
from device_drivers.ble.sessions.profiles import HEALTH_SERVICES, profile_of

__all__ = ["BleCentral", "CentralSettings", "CentralStats"]

log = logging.getLogger(__name__)

ScannerBackend = type[BaseBleakScanner] | None
Monotonic = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CentralSettings:
    scanner_silence_s: float = 120.0  # no advertisement at all this long: restart the scanner
    watchdog_tick_s: float = 1.0
    scanner_start_timeout_s: float = 10.0
    scanner_retry: tuple[float, float] = (1.0, 60.0)  # first and cap of the start backoff
    max_links: int = 3  # simultaneous connections (BlueZ adapters handle a handful)
    session: SessionSettings = field(default_factory=SessionSettings)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass
class CentralStats:
    """Counters for status reports and tests."""

    scanner_starts: int = 0
    scanner_restarts: int = 0  # by the watchdog
    scanner_failures: int = 0
    attempts: Counter[str] = field(default_factory=Counter)  # per address
    failures: Counter[ErrorKind] = field(default_factory=Counter)
    successes: Counter[str] = field(default_factory=Counter)
    unknown: set[str] = field(default_factory=set)


@dataclass
class _Sighting:
    device: BLEDevice | None = None
    at: float = float("-inf")
    event: asyncio.Event = field(default_factory=asyncio.Event)


class BleCentral:
    """Scan, connect to known devices when they advertise, read them; run until cancelled."""

    def __init__(self, devices: Iterable[KnownDevice], sink: SessionSink, *,
                 scanner_backend: ScannerBackend = None, client_backend: ClientBackend = None,
                 settings: CentralSettings | None = None, monotonic: Monotonic = time.monotonic,
                 rnd: Callable[[], float] = random.random,
                 on_stack_failure: Callable[[], Awaitable[None]] | None = None) -> None:
        self.devices = {d.address.upper(): d for d in devices}
        self.settings = settings or CentralSettings()
        self.stats = CentralStats()
        self._sink = sink
        self._scanner_backend = scanner_backend
        self._client_backend = client_backend
        self._now = monotonic
        self._rnd = rnd
        self._on_stack_failure = on_stack_failure
        self._sightings = {address: _Sighting() for address in self.devices}
        self._last_advertisement = monotonic()
        self._links = asyncio.Semaphore(self.settings.max_links)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._scan_forever(), name="ble:scanner")
            for address, device in self.devices.items():
                group.create_task(self._serve(device), name=f"ble:{device.device_id}")
                log.debug("watching %s (%s)", device.device_id, address)

    # -- scanning ----------------------------------------------------------------

    async def _scan_forever(self) -> None:
        failures = 0
        while True:
            scanner = BleakScanner(self._on_advertisement, list(HEALTH_SERVICES),
                                   backend=self._scanner_backend)
            if not await self._start(scanner):
                failures += 1
                await asyncio.sleep(self._scanner_delay(failures))
                continue
            failures = 0
            try:
                await self._watch()
            finally:
                await self._stop(scanner)
                raise_if_cancelled()

    async def _start(self, scanner: BleakScanner) -> bool:
        try:
            async with asyncio.timeout(self.settings.scanner_start_timeout_s):
                await scanner.start()
        except (BleakError, OSError, TimeoutError) as exc:
            self.stats.scanner_failures += 1
            log.error("BLE scanner did not start: %s", exc)
            if self._on_stack_failure is not None:
                await self._on_stack_failure()
            return False
        self.stats.scanner_starts += 1
        self._last_advertisement = self._now()
        return True

    def _scanner_delay(self, failures: int) -> float:
        first, cap = self.settings.scanner_retry
        return float(min(first * 2 ** min(failures - 1, 16), cap))

    async def _watch(self) -> None:
        """Return when the scanner has been silent for too long (the watchdog)."""
        silence = self.settings.scanner_silence_s
        while self._now() - self._last_advertisement < silence:
            await asyncio.sleep(self.settings.watchdog_tick_s)
        self.stats.scanner_restarts += 1
        log.warning("BLE scanner silent for %.0f s: restarting it", silence)

    async def _stop(self, scanner: BleakScanner) -> None:
        try:
            async with asyncio.timeout(self.settings.scanner_start_timeout_s):
                await scanner.stop()
        except (BleakError, OSError, TimeoutError) as exc:
            log.warning("BLE scanner did not stop cleanly: %s", exc)

    def _on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        now = self._now()
        self._last_advertisement = now
        sighting = self._sightings.get(device.address.upper())
        if sighting is not None:
            sighting.device, sighting.at = device, now
            sighting.event.set()
            return
        if device.address not in self.stats.unknown:
            self.stats.unknown.add(device.address)
            profile = profile_of(advertisement.service_uuids)
            # Not read: only configured devices are attributed to a patient.
            log.info("unknown %s device advertising (…%s): not configured, not read",
                     profile, device.address[-5:])

    # -- one worker per device ---------------------------------------------------

    async def _serve(self, device: KnownDevice) -> None:
        backoff = Backoff(self.settings.backoff, self._rnd)
        done_at = float("-inf")
        while True:
            raise_if_cancelled()
            target = await self._advertised_after(device, done_at)
            async with self._links:
                kind = await self._one_session(device, target)
            done_at = self._now()
            if kind is None:
                backoff.succeeded()
                continue
            delay = backoff.failed(kind)
            log.info("%s: %s; next attempt in %.1f s", device.device_id, kind, delay)
            await asyncio.sleep(delay)

    async def _advertised_after(self, device: KnownDevice, after: float) -> BLEDevice:
        """The device as last seen, once it advertised after ``after``."""
        sighting = self._sightings[device.address.upper()]
        while sighting.device is None or sighting.at <= after:
            sighting.event.clear()
            await sighting.event.wait()
        return sighting.device

    async def _one_session(self, device: KnownDevice, target: BLEDevice) -> ErrorKind | None:
        """Run a session; the error kind that ended it, or None on success."""
        self.stats.attempts[device.address] += 1
        session = DeviceSession(device, target, self._sink, backend=self._client_backend,
                                settings=self.settings.session)
        try:
            await session.run()
        except BleSessionError as exc:
            self.stats.failures[exc.kind] += 1
            log.warning("%s: session failed at %s: %s", device.device_id, exc.step or "?", exc)
            return exc.kind
        finally:
            await self._deliver_held(session.report.held)
        self.stats.successes[device.address] += 1
        return None

    async def _deliver_held(self, held: list[Delivery]) -> None:
        """Observations the device already had confirmed: retry until the sink takes them."""
        backoff = Backoff(self.settings.backoff, self._rnd)
        while held:
            try:
                await self._sink.deliver(held[0])
                held.pop(0)
                backoff.succeeded()
            except DeliveryRefused:
                await asyncio.sleep(backoff.failed(ErrorKind.REFUSED))
