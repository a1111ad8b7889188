"""Simulated serial instruments on a pseudo-terminal pair.

The device owns the pty master; the host opens the slave path (``PtyDevice.path``)
with pyserial like any tty. The device notices the host by reading the master: while
no one holds the slave open, Linux answers EIO; once it is open, the read just has no
data. Unplugging closes the master, so the host's reads fail and the path disappears.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import tty
from datetime import datetime

from firmware_sim.serial.astm_sim import (
    Faults,
    GlucometerSim,
    InstrumentSender,
    PocAnalyzerSim,
    Timers,
)

__all__ = ["PtyDevice"]

_TICK = 0.005


class PtyDevice:
    """An ASTM instrument (glucometer or POC analyzer) behind a pty, run in a thread."""

    def __init__(self, device: GlucometerSim | PocAnalyzerSim, *,
                 timers: Timers | None = None, faults: Faults | None = None,
                 clock_start: datetime = datetime(2024, 3, 1, 12, 0, 0)) -> None:
        self.device = device
        self.faults = faults or Faults()
        self.sender = InstrumentSender(timers or Timers())
        self.clock_start = clock_start
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)  # the host opens it by path; until then reads give EIO
        os.set_blocking(self.master, False)
        self.sessions = 0
        self.unplugged = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pty-astm-device", daemon=True)

    def __enter__(self) -> PtyDevice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._close_master()

    def unplug(self) -> None:
        """Pull the cable now (from any thread: the device thread does the closing)."""
        self.unplugged = True

    def _close_master(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def _read(self) -> bytes | None:
        """Bytes from the host, b'' when none, None when no host holds the slave."""
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return None
            raise

    def _run(self) -> None:
        connected_at: float | None = None
        while not self._stop.is_set() and not self.unplugged:
            data = self._read()
            now = time.monotonic()
            if data is None:
                if connected_at is not None:
                    self.sender.reset()
                connected_at = None
                time.sleep(_TICK)
                continue
            if connected_at is None:
                connected_at = now
                self._session_opened()
            self._exchange(data, now, now - connected_at)
            time.sleep(_TICK)
        if self.unplugged:
            self._close_master()

    def _session_opened(self) -> None:
        self.sessions += 1
        if isinstance(self.device, GlucometerSim):
            self.sender.add(self.device.dump(self.clock_start))

    def _exchange(self, data: bytes, now: float, elapsed: float) -> None:
        if isinstance(self.device, PocAnalyzerSim):
            for message in self.device.due(elapsed):
                self.sender.add(message)
        if data and self.sender.phase == "frames":  # NAK storms hit frame replies
            data = self.faults.on_input(data)
        out = self.sender.receive(data, now) if data else b""
        out += self.sender.step(now)
        if out:
            self._write(out)

    def _write(self, out: bytes) -> None:
        f = self.faults
        sent = self.sender.frames_sent
        if f.unplug_after is not None and sent > f.unplug_after:
            self.unplugged = True
            return
        if f.silent_after is not None and sent > f.silent_after:
            return
        try:
            os.write(self.master, f.on_output(out))
        except OSError:
            self.sender.reset()
