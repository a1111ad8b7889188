"""Serial source: one instrument on a serial port (ASTM glucometer or POC analyzer, OneTouch).

Configured by a ``[[sources]]`` entry of the gateway TOML::

    [[sources]]
    type = "serial"
    name = "poc-ward-2"
    port = "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0"  # any pyserial URL or path:
                                    # /dev/ttyUSB0, hwgrep://0403:6001, a pty, spy://...
    family = "astm-poc"             # astm-glucometer | astm-poc | onetouch-ultraeasy
    device = "poc-1"                # device id; its [[devices]] entry maps ASTM patient ids
    baudrate = 9600                 # default: the family's
    bytesize = 8                    # 5-8
    parity = "N"                    # N, E, O, M, S
    stopbits = 1                    # 1, 1.5, 2
    codes = { XCRP = { kind = "crp", units = { "mg/L" = 1.0 } } }  # ASTM only: test codes
                                    # added to, or overriding, the family's table
    reconnect_min_s = 0.2           # backoff while the port is missing (unplugged)
    reconnect_max_s = 5
    retry_when_full_s = 1           # how long the device is refused when the outbox is full

Patient attribution is not done here: the ASTM Patient record id travels as
``Observation.patient_ref`` and the device's ``patients`` table maps it in ``Intake``; an
unknown id leaves the reading unattributed (patient None), never dropped.

Commit before acknowledgement
-----------------------------
The blocking ``SerialSession`` runs in a worker thread. Its driver is wrapped in
``CommitFirst``: when the family driver returns complete results from ``data_received`` or
``poll``, they are committed with ``Intake.take`` *inside that call*, on the session thread.
A ``SerialDriver`` only hands its replies out through ``data_to_send``, which the session can
call only after ``data_received`` has returned (one thread, sans-I/O driver); so for ASTM
the ACK of the frame carrying the terminator record (E1381 §6.3.4), produced while that
frame is parsed, leaves the gateway only once the message is durable in the outbox. No
window remains in which the instrument hears "taken" for a result that is not committed.

The window that remains is the opposite one, and it is safe: a crash (``kill -9``, power
loss) after the commit and before the ACK makes the instrument resend the message later
(it keeps a message until its last frame is acknowledged, §6.5.1/§6.5.2). The resent
results get the same deterministic reading ids (device, kind, device time, record number,
value), so the outbox takes them once.

When ``Intake.take`` raises ``OutboxFull``, the final frame is answered with NAK instead of
ACK, the link is reset to neutral and the receiver answers ENQ with NAK ("busy", §6.2) for
``retry_when_full_s``; the instrument times out, ends with EOT and sends the whole message
again later. OneTouch meters are dumped on request and keep their memory, so a refused dump
is simply asked again after the pause (records already taken are recognised by id).

Unplug and replug: the session reopens the port with capped, jittered exponential backoff
and never stops the gateway; an incomplete message is discarded by the link layer, so a
half-received result never reaches the outbox. An unexpected error in a driver is logged
and the session restarts; only ``OutboxError`` (the outbox database itself failed) ends the
source, and with it the gateway, loudly.

Errors: configuration problems raise ``gateway.errors.ConfigError``. pyserial is only called
from ``SerialSettings.open``, which ``SerialSession`` calls and whose exceptions it translates
at that seam (``PortUnavailable``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import serial

from device_drivers.astm import (
    GLUCOMETER_CODES,
    POC_ANALYZER_CODES,
    AstmDriver,
    CodeTable,
    CodeTableError,
    table_from_mapping,
)
from device_drivers.onetouch import UltraEasyDriver
from device_drivers.serial_session import SerialDriver, SerialSession
from gateway.errors import ConfigError, OutboxError, OutboxFull
from gateway.intake import Intake
from gateway.sources.base import Source
from vigie.contract import ContractError, Observation, check_id

__all__ = ["FAMILIES", "CommitFirst", "SerialSettings", "SerialSource", "make_driver"]

log = logging.getLogger(__name__)

_NAK: Final = b"\x15"  # E1381 §6.3.4: the frame is not accepted
_ASTM_TABLES: Final[Mapping[str, CodeTable]] = {"astm-glucometer": GLUCOMETER_CODES,
                                                "astm-poc": POC_ANALYZER_CODES}
FAMILIES: Final = (*_ASTM_TABLES, "onetouch-ultraeasy")
_PARITIES: Final = {"N": "N", "E": "E", "O": "O", "M": "M", "S": "S", "NONE": "N",
                    "EVEN": "E", "ODD": "O", "MARK": "M", "SPACE": "S"}
_STOPBITS: Final = (1, 1.5, 2)


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Port URL and line settings; ``open`` is the ``SerialSession`` opener."""

    port: str
    baudrate: int | None = None  # None: the family's default
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> SerialSettings:
        port = options.get("port")
        if not isinstance(port, str) or not port:
            raise ConfigError(f"serial source {name!r} needs 'port' (a path or pyserial URL)")
        try:
            baud = options.get("baudrate")
            settings = cls(port, None if baud is None else int(baud),
                           int(options.get("bytesize", 8)),
                           _PARITIES[str(options.get("parity", "N")).upper()],
                           float(options.get("stopbits", 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"serial source {name!r}: bad line setting ({exc})") from exc
        settings.check(name)
        return settings

    def check(self, name: str) -> None:
        if self.baudrate is not None and self.baudrate <= 0:
            raise ConfigError(f"serial source {name!r}: baudrate must be positive")
        if self.bytesize not in (5, 6, 7, 8):
            raise ConfigError(f"serial source {name!r}: bytesize must be 5-8")
        if self.stopbits not in _STOPBITS:
            raise ConfigError(f"serial source {name!r}: stopbits must be 1, 1.5 or 2")

    def open(self, url: str, baudrate: int, timeout: float) -> Any:
        """Open the port (``serial_for_url``: URLs such as ``hwgrep://`` work)."""
        return serial.serial_for_url(
            url, baudrate=self.baudrate or baudrate, bytesize=self.bytesize,
            parity=self.parity, stopbits=self.stopbits, timeout=timeout,
            write_timeout=max(1.0, timeout * 10))


def make_driver(family: str, codes: Mapping[str, Any] | None = None) -> SerialDriver:
    """The family driver; ``codes`` (TOML-shaped) extends an ASTM family's test-code table."""
    if family in _ASTM_TABLES:
        base = _ASTM_TABLES[family]
        try:
            table = table_from_mapping(codes, base) if codes else base
        except CodeTableError as exc:
            raise ConfigError(f"family {family}: bad 'codes' table ({exc})") from exc
        return AstmDriver(table)
    if family == "onetouch-ultraeasy":
        if codes:
            raise ConfigError("family onetouch-ultraeasy has no test codes to override")
        return UltraEasyDriver()
    raise ConfigError(f"unknown serial family {family!r} (known: {', '.join(FAMILIES)})")


class CommitFirst(SerialDriver):
    """A family driver whose results are committed before the device hears they were taken.

    ``commit`` is called on the session thread with each batch of complete results, before
    the session writes the driver's replies. When it raises ``OutboxFull`` the pending
    replies are dropped (ASTM: NAK instead of the final ACK), the link is reset and the
    device is refused for ``refuse_for`` seconds. Capability flags stay False here: this
    wrapper asks for a memory dump itself, when the inner driver offers one.
    """

    family: ClassVar[str] = "commit-first"

    def __init__(self, inner: SerialDriver, commit: Callable[[Sequence[Observation]], object],
                 refuse_for: float = 1.0) -> None:
        self.inner = inner
        self.commit = commit
        self.refuse_for = refuse_for
        self.refused_until: float | None = None
        self.committed = 0
        self.refusals = 0
        self._dump_due = False
        self._extra = b""

    def connection_made(self, now: float) -> None:
        self.inner.connection_made(now)
        self._dump_due = self.inner.can_dump_memory
        self._set_busy(self.refused_until is not None)
        self._maybe_dump(now)

    def data_received(self, data: bytes, now: float) -> list[Observation]:
        return self._take(self.inner.data_received(data, now), now)

    def poll(self, now: float) -> list[Observation]:
        if self.refused_until is not None and now >= self.refused_until:
            self._resume(now)
        return self._take(self.inner.poll(now), now)

    def data_to_send(self) -> bytes:
        out, self._extra = self._extra + self.inner.data_to_send(), b""
        return out

    def connection_lost(self, reason: str) -> None:
        self.inner.connection_lost(reason)

    def _take(self, found: list[Observation], now: float) -> list[Observation]:
        if not found:
            return []
        try:
            self.commit(found)
        except OutboxFull:
            self._refuse(now, len(found))
            return []
        self.committed += len(found)
        return found

    def _refuse(self, now: float, count: int) -> None:
        self.inner.data_to_send()  # the acknowledgement of the refused results: never sent
        self.inner.connection_made(now)  # forget the transfer; the device sends it again
        self._extra = _NAK if isinstance(self.inner, AstmDriver) else b""
        self._dump_due = self.inner.can_dump_memory
        self.refused_until = now + self.refuse_for
        self.refusals += 1
        self._set_busy(True)
        log.error("outbox full: %d result(s) of %s NOT acknowledged, the device keeps them; "
                  "refusing it for %.1f s", count, self.inner.family, self.refuse_for)

    def _resume(self, now: float) -> None:
        self.refused_until = None
        self._set_busy(False)
        log.info("accepting %s results again", self.inner.family)
        self._maybe_dump(now)

    def _maybe_dump(self, now: float) -> None:
        if self._dump_due and self.refused_until is None:
            self._dump_due = False
            self.inner.request_dump(now)

    def _set_busy(self, busy: bool) -> None:
        # E1381 §6.2: a receiver that cannot take a message answers ENQ with NAK.
        if isinstance(self.inner, AstmDriver):
            self.inner.link.receiver.busy = busy


def _float(name: str, options: Mapping[str, Any], key: str, default: float) -> float:
    try:
        value = float(options.get(key, default))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"serial source {name!r}: {key!r} must be a number") from exc
    if value < 0:
        raise ConfigError(f"serial source {name!r}: {key!r} must not be negative")
    return value


class SerialSource(Source):
    """A serial instrument, read by a ``SerialSession`` on a dedicated worker thread."""

    kind = "serial"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        self.settings = SerialSettings.from_options(name, options)
        self.family = str(options.get("family", ""))
        try:
            self.device_id = check_id(str(options.get("device", "")), "device")
        except ContractError as exc:
            raise ConfigError(f"serial source {name!r}: 'device' ({exc})") from exc
        codes = options.get("codes")
        if codes is not None and not isinstance(codes, Mapping):
            raise ConfigError(f"serial source {name!r}: 'codes' must be a table")
        self.inner = make_driver(self.family, codes)
        self.backoff = (_float(name, options, "reconnect_min_s", 0.2),
                        _float(name, options, "reconnect_max_s", 5.0))
        self.read_timeout = _float(name, options, "read_timeout_s", 0.05) or 0.05
        self.refuse_for = _float(name, options, "retry_when_full_s", 1.0)
        self.driver: CommitFirst | None = None
        self.session: SerialSession | None = None
        self.state = "starting"

    async def run(self, intake: Intake) -> None:
        stop = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(self._work, intake, stop))
        try:
            await asyncio.shield(work)
        finally:
            stop.set()  # the session sees it within one read timeout
            await asyncio.wait([work], timeout=5)
            if work.done() and not work.cancelled():
                work.exception()  # retrieved: a cancelled run reports nothing more

    def _build(self, intake: Intake) -> SerialSession:
        def commit(found: Sequence[Observation]) -> object:
            return intake.take(self.device_id, found)

        self.driver = CommitFirst(self.inner, commit, self.refuse_for)
        return SerialSession(self.settings.port, self.driver, read_timeout=self.read_timeout,
                             backoff=self.backoff, opener=self.settings.open,
                             on_state=self._on_state)

    def _work(self, intake: Intake, stop: threading.Event) -> None:
        """Session loop on the worker thread; restarts after unexpected driver errors."""
        self.session = self._build(intake)
        log.info("serial %s: %s on %s for device %s", self.name, self.family,
                 self.settings.port, self.device_id)
        while not stop.is_set():
            try:
                self.session.run(self._delivered, stop)
            except OutboxError:
                raise
            except Exception:
                log.exception("serial %s: session failed; restarting in %.1f s", self.name,
                              self.backoff[1])
                stop.wait(self.backoff[1])

    def _delivered(self, obs: Observation) -> None:
        log.debug("serial %s: %s taken", self.name, obs.kind)

    def _on_state(self, state: str) -> None:
        self.state = state
