"""Simulated Bluetooth LE health devices: GATT servers on bumble virtual controllers.

Each peripheral behaves like the real thing: it is quiet until it takes a
measurement (or its button is pressed, :meth:`SimulatedPeripheral.wake`), then
advertises, connectable, with its service UUID for a while.

Devices
    :class:`Glucometer` (Glucose 0x1808: measurement 0x2A18 notify, context
    0x2A34, feature 0x2A51, RACP 0x2A52 write+indicate over a record memory;
    RACP needs an encrypted, i.e. bonded, link as the profile requires),
    :class:`WeightScale` (0x181D, 0x2A9D indicate, user index),
    :class:`BloodPressureMonitor` (0x1810, 0x2A35 indicate),
    :class:`PulseOximeter` (0x1822, 0x2A5E indicate),
    :class:`Thermometer` (0x1809, 0x2A1C indicate).
    All carry Device Information (0x180A) and Battery (0x180F).

Indicating devices keep measurements until a collector enables indications,
then deliver them one confirmed indication at a time.

Quirks (:class:`Quirks`) reproduce what field devices do: non-default units,
NaN mean arterial pressure, a clock never set, a clock offset, a glucometer
that keeps its base time and reports a Time Offset, a link dropped in the
middle of a RACP transfer, and a device that advertises but never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from bumble import att, gatt, hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Device
from bumble.host import Host
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from firmware_sim.ble import _bytes

if TYPE_CHECKING:
    from firmware_sim.ble.link import SimulatedLink

__all__ = [
    "BloodPressureMonitor",
    "Glucometer",
    "PulseOximeter",
    "Quirks",
    "SimulatedPeripheral",
    "Thermometer",
    "WeightScale",
    "demo_peripherals",
]

logger = logging.getLogger(__name__)

FACTORY_EPOCH = datetime(2000, 1, 1)
"""Where a device clock that was never set starts counting."""

TEST_COMPANY_ID = 0xFFFF  # Bluetooth SIG "reserved for internal use / testing"
_LB_PER_KG = 2.20462262
_MMHG_PER_KPA = 7.50062
_MGDL_PER_MMOLL = 18.016
_GLUCOSE_TIME_FAULT = 1 << 11  # GLS sensor status annunciation b11

_PERM_R = gatt.Characteristic.Permissions.READABLE
_PERM_W_ENC = (
    gatt.Characteristic.Permissions.WRITEABLE
    | gatt.Characteristic.Permissions.WRITE_REQUIRES_ENCRYPTION
)
_P = gatt.Characteristic.Properties


@dataclass(frozen=True)
class Quirks:
    """Field behaviours a simulated device can be switched into.

    ``imperial_units``: the non-default unit flag of each profile (scale lb,
    thermometer degF, blood pressure kPa, glucometer mol/L).
    ``nan_mean_arterial_pressure``: BP monitor sends NaN (0x07FF) as MAP.
    ``clock_never_set``: the clock counts from 2000-01-01 since power-on; the
    glucometer flags "time fault", the oximeter sets "clock not set" and omits
    its time stamp.
    ``clock_offset``: the clock is this far ahead of true time.
    ``glucose_time_offset``: the glucometer's base time stays unadjusted and the
    correction goes into the Time Offset field (user-facing time is right).
    ``disconnect_mid_racp_after``: the glucometer drops the link after sending
    this many records of its first RACP transfer.
    ``never_answers``: advertises but never takes part in a connection.
    """

    imperial_units: bool = False
    nan_mean_arterial_pressure: bool = False
    clock_never_set: bool = False
    clock_offset: timedelta = timedelta(0)
    glucose_time_offset: timedelta | None = None
    disconnect_mid_racp_after: int | None = None
    never_answers: bool = False


def _uuid16(value: int) -> Any:
    return UUID.from_16_bits(value)


def _readable(uuid: int, value: bytes) -> gatt.Characteristic[bytes]:
    return gatt.Characteristic(_uuid16(uuid), _P.READ, _PERM_R, value)


def _subscribable(uuid: int, properties: Any) -> gatt.Characteristic[bytes]:
    return gatt.Characteristic(_uuid16(uuid), properties, _PERM_R, b"")


@dataclass
class _Identity:
    name: str
    address: str
    model: str
    serial: str
    battery_percent: int = 87
    firmware: str = "1.0.0"


class SimulatedPeripheral:
    """Base class: one bumble device on its own controller, advertising on demand."""

    SERVICE_UUID: ClassVar[int]
    MODEL: ClassVar[str]

    def __init__(
        self,
        name: str,
        address: str,
        *,
        quirks: Quirks | None = None,
        clock: Callable[[], datetime] = datetime.now,
        serial: str = "SIM-0001",
        advertising_window: float = 30.0,
        advertising_interval_ms: float = 50.0,
    ) -> None:
        self.identity = _Identity(name, address, self.MODEL, serial)
        self.quirks = quirks or Quirks()
        self._clock = clock
        self._window = advertising_window
        self._interval = advertising_interval_ms
        self._device: Any = None
        self._controller: Any = None
        self._sim: SimulatedLink | None = None
        self._boot_time = clock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._advertising_stop: asyncio.TimerHandle | None = None
        self.connections: list[Any] = []
        self.pairings = 0
        self.connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------

    async def attach(self, sim: SimulatedLink) -> None:
        """Create controller, host and GATT server on ``sim`` and power on."""
        self._sim = sim
        self._controller = sim.new_controller(self.identity.name, mute=self.quirks.never_answers)
        host = Host(self._controller, AsyncPipeSink(self._controller))
        device = Device(name=self.identity.name, address=hci.Address(self.identity.address))
        device.host = host
        device.pairing_config_factory = _just_works
        device.add_services(self._all_services())
        device.on(device.EVENT_CONNECTION, self._on_connection)
        await device.power_on()
        self._device = device

    async def detach(self) -> None:
        """Drop links, stop advertising, power off and leave the link."""
        for task in list(self._tasks):
            task.cancel()
        self._cancel_advertising_timer()
        if self._device is not None:
            for connection in list(self.connections):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.disconnect(), 1.0)
            await self._device.power_off()
        if self._sim is not None and self._controller is not None:
            self._sim.link.remove_controller(self._controller)
        self._device = self._controller = self._sim = None

    @property
    def device(self) -> Any:
        """The bumble device (for tests and scenario scripts)."""
        if self._device is None:
            raise RuntimeError(f"{self.identity.name} is not attached")
        return self._device

    @property
    def address(self) -> str:
        """The static random address, as bleak shows it."""
        return self.identity.address

    # -- advertising -------------------------------------------------------------

    def wake(self, duration: float | None = None) -> None:
        """Press the button: advertise (connectable) for ``duration`` seconds.

        A device not attached to a link has no radio: nothing happens.
        """
        if self._device is not None:
            self._spawn(self._advertise(self._window if duration is None else duration))

    def advertising_data(self) -> bytes:
        """Flags, service UUID, local name, battery service data, test manufacturer data."""
        ad = AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([0x06])),
                (
                    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    struct.pack("<H", self.SERVICE_UUID),
                ),
                (AdvertisingData.COMPLETE_LOCAL_NAME, self.identity.name.encode()),
                (
                    AdvertisingData.SERVICE_DATA_16_BIT_UUID,
                    struct.pack("<HB", 0x180F, self.identity.battery_percent),
                ),
                (
                    AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                    struct.pack("<H", TEST_COMPANY_ID) + b"VG",
                ),
            ]
        )
        return bytes(ad)

    async def _advertise(self, duration: float) -> None:
        if self.connections:
            return
        await self.device.start_advertising(
            advertising_data=self.advertising_data(),
            advertising_interval_min=self._interval,
            advertising_interval_max=self._interval,
        )
        self._cancel_advertising_timer()
        loop = asyncio.get_running_loop()
        self._advertising_stop = loop.call_later(
            duration, lambda: self._spawn(self._stop_advertising())
        )

    async def _stop_advertising(self) -> None:
        self._cancel_advertising_timer()
        if self._device is not None:
            await self._device.stop_advertising()

    def _cancel_advertising_timer(self) -> None:
        if self._advertising_stop is not None:
            self._advertising_stop.cancel()
            self._advertising_stop = None

    # -- connections -------------------------------------------------------------

    def _on_connection(self, connection: Any) -> None:
        self._cancel_advertising_timer()
        self.connections.append(connection)
        self.connected.set()
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._forget(connection))
        connection.on(connection.EVENT_PAIRING, lambda _keys: self._count_pairing())

    def _forget(self, connection: Any) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        if not self.connections:
            self.connected.clear()
        self._on_disconnection(connection)

    def _on_disconnection(self, connection: Any) -> None:
        """Hook for subclasses (procedures bound to a link end with it)."""

    def _count_pairing(self) -> None:
        self.pairings += 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("%s: task failed: %r", self.identity.name, task.exception())

    # -- time --------------------------------------------------------------------

    def now(self) -> datetime:
        """True time, from the injected clock."""
        return self._clock()

    def device_time(self, at: datetime | None = None) -> datetime:
        """What the device's own clock reads at true time ``at``."""
        true_time = self.now() if at is None else at
        if self.quirks.clock_never_set:
            return FACTORY_EPOCH + (true_time - self._boot_time)
        return true_time + self.quirks.clock_offset

    # -- GATT --------------------------------------------------------------------

    def _all_services(self) -> list[gatt.Service]:
        return [self._profile_service(), self._device_information(), self._battery()]

    def _profile_service(self) -> gatt.Service:
        raise NotImplementedError

    def _device_information(self) -> gatt.Service:
        ident = self.identity
        return gatt.Service(
            _uuid16(0x180A),
            [
                _readable(0x2A29, b"Vigie Simulated Devices"),
                _readable(0x2A24, ident.model.encode()),
                _readable(0x2A25, ident.serial.encode()),
                _readable(0x2A26, ident.firmware.encode()),
            ],
        )

    def _battery(self) -> gatt.Service:
        value: gatt.CharacteristicValue[bytes] = gatt.CharacteristicValue(
            read=lambda _c: bytes([self.identity.battery_percent])
        )
        level: gatt.Characteristic[bytes] = gatt.Characteristic(
            _uuid16(0x2A19), _P.READ | _P.NOTIFY, _PERM_R, value
        )
        return gatt.Service(_uuid16(0x180F), [level])


def _just_works(_connection: Any) -> PairingConfig:
    """LE Secure Connections, Just Works, bonding (no display, no keyboard)."""
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
    )


# ---------------------------------------------------------------------------------
# Indicating devices: a queue of measurements delivered when indications are enabled
# ---------------------------------------------------------------------------------


class _IndicatingPeripheral(SimulatedPeripheral):
    """A device that stores measurements and indicates them to a subscriber."""

    MEASUREMENT_UUID: ClassVar[int]
    FEATURE_UUID: ClassVar[int | None] = None
    FEATURE_VALUE: ClassVar[bytes] = b""

    def __init__(self, name: str, address: str, **kwargs: Any) -> None:
        super().__init__(name, address, **kwargs)
        self.pending: list[bytes] = []
        self.delivered: list[bytes] = []
        self._measurement = _subscribable(self.MEASUREMENT_UUID, _P.INDICATE)
        self._measurement.on(gatt.Characteristic.EVENT_SUBSCRIPTION, self._on_subscription)

    def _store(self, value: bytes) -> bytes:
        self.pending.append(value)
        self.wake()
        return value

    def _profile_service(self) -> gatt.Service:
        characteristics = [self._measurement]
        if self.FEATURE_UUID is not None:
            characteristics.append(_readable(self.FEATURE_UUID, self.FEATURE_VALUE))
        return gatt.Service(_uuid16(self.SERVICE_UUID), characteristics)

    def _on_subscription(self, bearer: Any, _notify: bool, indicate: bool) -> None:
        if indicate:
            self._spawn(self._deliver(bearer))

    async def _deliver(self, bearer: Any) -> None:
        while self.pending and bearer in self.connections:
            value = self.pending[0]
            await self.device.indicate_subscriber(bearer, self._measurement, value)
            self.delivered.append(self.pending.pop(0))


class WeightScale(_IndicatingPeripheral):
    """Multi-user weight scale (0x181D); user index in each measurement."""

    SERVICE_UUID = 0x181D
    MEASUREMENT_UUID = 0x2A9D
    FEATURE_UUID = 0x2A9E
    # b0 time stamp, b1 multiple users, b3-6 = 7: 0.005 kg / 0.01 lb resolution.
    FEATURE_VALUE = struct.pack("<I", 0x01 | 0x02 | (7 << 3))
    MODEL = "SIM-WS1"

    def measure(self, kg: float, *, user_id: int = 1, at: datetime | None = None) -> bytes:
        """Step on the scale: store the reading and start advertising."""
        imperial = self.quirks.imperial_units
        value = kg * _LB_PER_KG if imperial else kg
        return self._store(
            _bytes.weight_measurement(
                value, imperial=imperial, when=self.device_time(at), user_id=user_id
            )
        )


class BloodPressureMonitor(_IndicatingPeripheral):
    """Upper-arm blood pressure monitor (0x1810) with pulse rate."""

    SERVICE_UUID = 0x1810
    MEASUREMENT_UUID = 0x2A35
    FEATURE_UUID = 0x2A49
    FEATURE_VALUE = struct.pack("<H", 0x0000)
    MODEL = "SIM-BP1"

    def measure(
        self,
        systolic: float,
        diastolic: float,
        *,
        pulse: float | None = None,
        user_id: int | None = None,
        at: datetime | None = None,
    ) -> bytes:
        """Take a reading (mmHg in, device unit out) and start advertising."""
        mean = diastolic + (systolic - diastolic) / 3.0
        if self.quirks.nan_mean_arterial_pressure:
            mean = math.nan
        values: tuple[float, ...] = (systolic, diastolic, mean)
        if self.quirks.imperial_units:
            values = tuple(v / _MMHG_PER_KPA for v in values)
        return self._store(
            _bytes.blood_pressure_measurement(
                *values,
                kpa=self.quirks.imperial_units,
                when=self.device_time(at),
                pulse=pulse,
                user_id=user_id,
            )
        )


class PulseOximeter(_IndicatingPeripheral):
    """Fingertip pulse oximeter (0x1822), spot-check measurements."""

    SERVICE_UUID = 0x1822
    MEASUREMENT_UUID = 0x2A5E
    FEATURE_UUID = 0x2A60
    FEATURE_VALUE = struct.pack("<H", 0x0000)
    MODEL = "SIM-PO1"

    def measure(self, spo2: float, pulse: float, *, at: datetime | None = None) -> bytes:
        """Take a spot check and start advertising."""
        when = None if self.quirks.clock_never_set else self.device_time(at)
        return self._store(_bytes.plx_spot_check(spo2, pulse, when=when))


class Thermometer(_IndicatingPeripheral):
    """Health thermometer (0x1809)."""

    SERVICE_UUID = 0x1809
    MEASUREMENT_UUID = 0x2A1C
    MODEL = "SIM-TH1"

    def measure(
        self, celsius: float, *, site: int | None = None, at: datetime | None = None
    ) -> bytes:
        """Take a temperature and start advertising."""
        fahrenheit = self.quirks.imperial_units
        value = celsius * 9.0 / 5.0 + 32.0 if fahrenheit else celsius
        return self._store(
            _bytes.temperature_measurement(
                value, fahrenheit=fahrenheit, when=self.device_time(at), site=site
            )
        )


# ---------------------------------------------------------------------------------
# Glucometer: record memory behind a Record Access Control Point
# ---------------------------------------------------------------------------------


class _RacpRejected(Exception):
    """A RACP request answered with a response code, not with records."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Procedure:
    connection: Any
    task: asyncio.Task[None] | None = None
    aborted: bool = False
    sent: list[int] = field(default_factory=list)


class Glucometer(SimulatedPeripheral):
    """Blood glucose meter (Glucose Service 0x1808) with a RACP record memory."""

    SERVICE_UUID = 0x1808
    MODEL = "SIM-GL1"
    # b0 low battery, b1 sensor malfunction, b2 sample size, b3 strip insertion
    # error, b5 result high-low, b8 time fault detection supported.
    FEATURE = 0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0020 | 0x0100

    def __init__(
        self, name: str, address: str, *, record_gap: float = 0.002, **kwargs: Any
    ) -> None:
        super().__init__(name, address, **kwargs)
        self.record_gap = record_gap
        """Seconds between two record notifications of a RACP transfer."""
        self.records: list[_bytes.GlucoseRecord] = []
        self._procedure: _Procedure | None = None
        self._dropped_once = False
        self._measurement = _subscribable(0x2A18, _P.NOTIFY)
        self._context = _subscribable(0x2A34, _P.NOTIFY)
        racp_value: gatt.CharacteristicValue[bytes] = gatt.CharacteristicValue(
            write=self._on_racp_write
        )
        self._racp: gatt.Characteristic[bytes] = gatt.Characteristic(
            _uuid16(0x2A52), _P.WRITE | _P.INDICATE, _PERM_W_ENC, racp_value
        )

    def measure(
        self,
        mg_dl: float,
        *,
        at: datetime | None = None,
        sample_type: int = 1,
        location: int = 1,
        silent: bool = False,
    ) -> _bytes.GlucoseRecord:
        """Store a reading (mg/dL in) in record memory; advertise unless ``silent``."""
        record = self._make_record(mg_dl, self.device_time(at), sample_type, location)
        self.records.append(record)
        if not silent:
            self.wake()
        return record

    def measurement_bytes(self, record: _bytes.GlucoseRecord) -> bytes:
        """The Glucose Measurement notification for ``record``."""
        return _bytes.glucose_measurement(record)

    def _make_record(
        self, mg_dl: float, when: datetime, sample_type: int, location: int
    ) -> _bytes.GlucoseRecord:
        mmol = self.quirks.imperial_units
        concentration = mg_dl / _MGDL_PER_MMOLL / 1000.0 if mmol else mg_dl / 100000.0
        record = _bytes.GlucoseRecord(
            sequence=len(self.records) + 1,
            base_time=when,
            concentration=concentration,
            mmol=mmol,
            sample_type=sample_type,
            location=location,
            sensor_status=_GLUCOSE_TIME_FAULT if self.quirks.clock_never_set else None,
        )
        offset = self.quirks.glucose_time_offset
        if offset is None:
            return record
        minutes = int(offset.total_seconds() // 60)
        return replace(record, base_time=when - offset, time_offset_min=minutes)

    def _profile_service(self) -> gatt.Service:
        return gatt.Service(
            _uuid16(self.SERVICE_UUID),
            [
                self._measurement,
                self._context,
                _readable(0x2A51, struct.pack("<H", self.FEATURE)),
                self._racp,
            ],
        )

    # -- RACP --------------------------------------------------------------------

    def _on_racp_write(self, connection: Any, value: bytes) -> None:
        """Validate a RACP request (ATT errors per GLS 1.0 3.9) and start it."""
        if len(value) < 2:
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH)
        if not self._racp_configured(connection):
            raise att.ATT_Error(0x81)  # CCCD improperly configured
        opcode = value[0]
        if opcode == _bytes.RACP_ABORT:
            self._spawn(self._abort(connection))
            return
        if self._procedure is not None:
            raise att.ATT_Error(0x80)  # procedure already in progress
        self._procedure = _Procedure(connection)
        self._procedure.task = asyncio.get_running_loop().create_task(
            self._run(connection, bytes(value))
        )

    def _racp_configured(self, connection: Any) -> bool:
        cccds = self.device.gatt_server.subscribers.get(connection, {})
        racp = cccds.get(self._racp.handle, b"\x00\x00")
        measurement = cccds.get(self._measurement.handle, b"\x00\x00")
        return bool(racp[0] & 0x02) and bool(measurement[0] & 0x01)

    async def _run(self, connection: Any, request: bytes) -> None:
        opcode = request[0]
        try:
            response = await self._execute(connection, request)
        except _RacpRejected as rejected:
            response = _bytes.racp_response(opcode, rejected.code)
        except asyncio.CancelledError:
            return
        finally:
            self._procedure = None
        if response is not None and connection in self.connections:
            await self.device.indicate_subscriber(connection, self._racp, response)

    async def _execute(self, connection: Any, request: bytes) -> bytes | None:
        opcode = request[0]
        if opcode == _bytes.RACP_REPORT_NUMBER:
            return _bytes.racp_number(len(self._select(request)))
        if opcode == _bytes.RACP_REPORT_RECORDS:
            return await self._report(connection, self._select(request))
        raise _RacpRejected(_bytes.RACP_OPCODE_NOT_SUPPORTED)

    def _select(self, request: bytes) -> list[_bytes.GlucoseRecord]:
        """Apply the RACP operator and sequence-number operands."""
        operator, operand = request[1], request[2:]
        if operator == _bytes.RACP_OP_ALL:
            return list(self.records)
        if operator == _bytes.RACP_OP_FIRST:
            return self.records[:1]
        if operator == _bytes.RACP_OP_LAST:
            return self.records[-1:]
        if operator in (_bytes.RACP_OP_LE, _bytes.RACP_OP_GE, _bytes.RACP_OP_RANGE):
            low, high = _sequence_bounds(operator, operand)
            return [r for r in self.records if low <= r.sequence <= high]
        raise _RacpRejected(_bytes.RACP_INVALID_OPERATOR)

    async def _report(self, connection: Any, records: list[_bytes.GlucoseRecord]) -> bytes | None:
        if not records:
            raise _RacpRejected(_bytes.RACP_NO_RECORDS)
        for record in records:
            if self._procedure is None or self._procedure.aborted:
                return None
            await self.device.notify_subscriber(
                connection, self._measurement, _bytes.glucose_measurement(record)
            )
            self._procedure.sent.append(record.sequence)
            if self._should_drop(len(self._procedure.sent)):
                await self._drop(connection)
                return None
            await asyncio.sleep(self.record_gap)
        return _bytes.racp_response(_bytes.RACP_REPORT_RECORDS, _bytes.RACP_SUCCESS)

    def _should_drop(self, sent: int) -> bool:
        after = self.quirks.disconnect_mid_racp_after
        return after is not None and not self._dropped_once and sent >= after

    async def _drop(self, connection: Any) -> None:
        """The disconnect-mid-transfer quirk: drop the link, then advertise again."""
        self._dropped_once = True
        await connection.drain()
        await connection.disconnect(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        self.wake()

    async def _abort(self, connection: Any) -> None:
        procedure = self._procedure
        if procedure is not None:
            procedure.aborted = True
            if procedure.task is not None:
                await asyncio.wait({procedure.task})
        response = _bytes.racp_response(_bytes.RACP_ABORT, _bytes.RACP_SUCCESS)
        await self.device.indicate_subscriber(connection, self._racp, response)

    def _on_disconnection(self, connection: Any) -> None:
        procedure = self._procedure
        if procedure is not None and procedure.connection is connection:
            procedure.aborted = True


def _sequence_bounds(operator: int, operand: bytes) -> tuple[int, int]:
    """Bounds from a RACP operand filtered by sequence number (filter type 0x01)."""
    if not operand:
        raise _RacpRejected(_bytes.RACP_INVALID_OPERAND)
    if operand[0] != _bytes.RACP_FILTER_SEQUENCE:
        raise _RacpRejected(_bytes.RACP_OPERAND_NOT_SUPPORTED)
    expected = 5 if operator == _bytes.RACP_OP_RANGE else 3
    if len(operand) != expected:
        raise _RacpRejected(_bytes.RACP_INVALID_OPERAND)
    if operator == _bytes.RACP_OP_RANGE:
        low, high = struct.unpack_from("<HH", operand, 1)
        return low, high
    (bound,) = struct.unpack_from("<H", operand, 1)
    return (bound, 0xFFFF) if operator == _bytes.RACP_OP_GE else (0, bound)


def demo_peripherals() -> list[SimulatedPeripheral]:
    """One of each device, as the demo runs them."""
    return [
        Glucometer("Vigie Glucometer", "C0:00:00:00:18:08"),
        WeightScale("Vigie Scale", "C0:00:00:00:18:1D"),
        BloodPressureMonitor("Vigie BP", "C0:00:00:00:18:10"),
        PulseOximeter("Vigie Oximeter", "C0:00:00:00:18:22"),
        Thermometer("Vigie Thermometer", "C0:00:00:00:18:09"),
    ]
