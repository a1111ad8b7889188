"""Serial device drivers: one abstract base, and a pyserial session that runs them.

A ``SerialDriver`` is sans-I/O (bytes and time in, observations and bytes out); the
``SerialSession`` owns the port, opened with ``serial.serial_for_url`` so ``loop://``,
``spy://`` and ``hwgrep://`` work, and survives the device coming and going.

Exceptions::

    SerialSessionError          root
    ├── PortUnavailable         retry later: the port cannot be opened (not plugged yet)
    ├── DeviceGone              retry later: the open port failed (unplug, peer closed)
    └── CapabilityError         fix the call: the driver does not offer this capability

No pyserial exception leaves this module: they are translated at the seam.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import serial

from vigie.backoff import Backoff
from vigie.contract import Observation

__all__ = [
    "CapabilityError",
    "DeviceGone",
    "PortUnavailable",
    "SerialDriver",
    "SerialSession",
    "SerialSessionError",
]

log = logging.getLogger(__name__)


class SerialSessionError(Exception):
    """Root of the serial session errors."""


class PortUnavailable(SerialSessionError):
    """The port could not be opened."""


class DeviceGone(SerialSessionError):
    """The port failed while open (read/write error after an unplug)."""


class CapabilityError(SerialSessionError):
    """The driver does not support the requested optional capability."""


class SerialDriver(abc.ABC):
    """Protocol logic of one serial device family, without I/O.

    Optional capabilities are declared here as class flags (never probed with hasattr):

    - ``pushes_results``: the device sends on its own (ASTM instruments);
    - ``can_dump_memory``: the host asks for the stored readings (``request_dump``);
    - ``carries_patient_id``: observations may carry ``patient_ref``;
    - ``can_read_clock`` / ``can_set_clock``: the device clock is reachable.
    """

    family: ClassVar[str] = "abstract"
    baudrate: ClassVar[int] = 9600
    pushes_results: ClassVar[bool] = False
    can_dump_memory: ClassVar[bool] = False
    carries_patient_id: ClassVar[bool] = False
    can_read_clock: ClassVar[bool] = False
    can_set_clock: ClassVar[bool] = False

    @abc.abstractmethod
    def connection_made(self, now: float) -> None:
        """The port was (re)opened: start from a clean state."""

    @abc.abstractmethod
    def data_received(self, data: bytes, now: float) -> list[Observation]:
        """Bytes read from the port; return the observations now complete."""

    @abc.abstractmethod
    def poll(self, now: float) -> list[Observation]:
        """Let timers run (called at least every read timeout)."""

    @abc.abstractmethod
    def data_to_send(self) -> bytes:
        """Bytes to write to the port, removed from the outbox."""

    @abc.abstractmethod
    def connection_lost(self, reason: str) -> None:
        """The port is gone: discard any incomplete transfer, pass nothing half up."""

    def request_dump(self, now: float) -> None:
        """Ask the device for its stored readings (``can_dump_memory``)."""
        raise CapabilityError(f"{self.family} cannot be asked for a memory dump")


def _default_opener(url: str, baudrate: int, timeout: float) -> Any:
    return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout,
                                 write_timeout=max(1.0, timeout * 10))


class SerialSession:
    """Run a driver on a port: read with timeouts, feed, write replies, reconnect.

    Not thread-safe; run it in one thread and stop it with ``stop`` (a threading.Event).
    Reconnection uses capped, jittered exponential backoff.
    """

    def __init__(self, url: str, driver: SerialDriver, *, read_timeout: float = 0.05,
                 backoff: tuple[float, float] = (0.2, 5.0),
                 opener: Callable[[str, int, float], Any] = _default_opener,
                 clock: Callable[[], float] = time.monotonic,
                 on_state: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.driver = driver
        self.read_timeout = read_timeout
        self.backoff = backoff
        self._opener = opener
        self._clock = clock
        self._on_state = on_state
        self.connects = 0
        self.disconnects = 0

    def run(self, on_observation: Callable[[Observation], None],
            stop: threading.Event, *, timeout: float | None = None) -> None:
        """Deliver observations to a callback until ``stop`` is set or ``timeout``."""
        for obs in self.observations(stop, timeout=timeout):
            on_observation(obs)

    def observations(self, stop: threading.Event,
                     *, timeout: float | None = None) -> Iterator[Observation]:
        """Yield observations as they complete, across reconnections."""
        end = None if timeout is None else self._clock() + timeout
        retries = Backoff(*self.backoff)
        while not self._done(stop, end):
            try:
                port = self._open()
            except PortUnavailable as exc:
                log.debug("port %s unavailable: %s", self.url, exc)
                stop.wait(retries.next())
                continue
            retries.reset()
            yield from self._serve(port, stop, end)

    def _done(self, stop: threading.Event, end: float | None) -> bool:
        return stop.is_set() or (end is not None and self._clock() >= end)

    def _state(self, state: str) -> None:
        log.info("serial %s: %s", self.url, state)
        if self._on_state:
            self._on_state(state)

    def _open(self) -> Any:
        try:
            port = self._opener(self.url, self.driver.baudrate, self.read_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortUnavailable(str(exc)) from exc
        self.connects += 1
        self._state("connected")
        return port

    def _serve(self, port: Any, stop: threading.Event,
               end: float | None) -> Iterator[Observation]:
        reason = "stopped"
        try:
            self.driver.connection_made(self._clock())
            if self.driver.can_dump_memory:
                self.driver.request_dump(self._clock())
            while not self._done(stop, end):
                yield from self._step(port)
        except DeviceGone as exc:
            reason = f"device gone: {exc}"
            self.disconnects += 1
        finally:
            self.driver.connection_lost(reason)
            self._close(port)
            self._state(reason)

    def _step(self, port: Any) -> list[Observation]:
        self._write(port, self.driver.data_to_send())
        data = self._read(port)
        now = self._clock()
        found = self.driver.data_received(data, now) if data else []
        found += self.driver.poll(now)
        self._write(port, self.driver.data_to_send())
        return found

    def _read(self, port: Any) -> bytes:
        try:
            return bytes(port.read(max(1, port.in_waiting)))
        except (serial.SerialException, OSError) as exc:
            raise DeviceGone(str(exc)) from exc

    def _write(self, port: Any, data: bytes) -> None:
        if not data:
            return
        try:
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise DeviceGone(str(exc)) from exc

    @staticmethod
    def _close(port: Any) -> None:
        try:
            port.close()
        except (serial.SerialException, OSError):
            log.debug("error closing a dead port", exc_info=True)
