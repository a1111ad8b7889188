"""Where a source hands over what a device sent: attribution, time correction, outbox.

Sources call ``Intake.take``; when it returns, the readings are durable and the source may
acknowledge the device. When it raises ``OutboxFull`` the source must not acknowledge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from gateway.errors import OutboxFull
from gateway.outbox import Outbox
from gateway.timefix import correct
from vigie.contract import Kind, Observation, Reading, check_id, now_utc, reading_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What the gateway knows of one device: owner, shared-ness, clock."""

    device_id: str
    patient_id: str | None = None  # None: a shared device, attributed by user index/patient ref
    users: Mapping[int, str] = field(default_factory=dict)  # scale user index -> patient
    patients: Mapping[str, str] = field(default_factory=dict)  # ASTM patient id -> patient
    clock_offset_s: float = 0.0  # device clock minus true time
    tz: str = "UTC"

    def attribute(self, obs: Observation) -> str | None:
        if obs.user_index is not None and obs.user_index in self.users:
            return self.users[obs.user_index]
        if obs.patient_ref is not None and obs.patient_ref in self.patients:
            return self.patients[obs.patient_ref]
        return self.patient_id


class Intake:
    def __init__(self, gateway_id: str, outbox: Outbox, devices: Mapping[str, DeviceProfile],
                 clock: Callable[[], datetime] = now_utc) -> None:
        self.gateway_id = check_id(gateway_id, "gateway")
        self.outbox = outbox
        self.devices = dict(devices)
        self._clock = clock
        self._wake: list[Callable[[], None]] = []
        self._watchers: list[Callable[[Sequence[Reading]], None]] = []
        self._lock = threading.Lock()
        self._devices_lock = threading.Lock()
        self.refused = 0

    def on_taken(self, callback: Callable[[], None]) -> None:
        """Register a callback run after readings are committed (wakes the publisher)."""
        self._wake.append(callback)

    def on_readings(self, callback: Callable[[Sequence[Reading]], None]) -> None:
        """Register a callback given the readings once committed (edge alarms evaluate them).
        It must not raise: the readings are durable and the device may be acknowledged."""
        self._watchers.append(callback)

    def profile(self, device_id: str) -> DeviceProfile:
        return self.devices.get(device_id) or DeviceProfile(check_id(device_id, "device"))

    def replace_devices(self, devices: Mapping[str, DeviceProfile]) -> None:
        """Swap in a new device mapping. One reference assignment: a source sees the old
        mapping or the new one, never a mix, and needs no lock to read it."""
        self.update_devices(lambda _: devices)

    def update_devices(self, change: Callable[[dict[str, DeviceProfile]],
                                              Mapping[str, DeviceProfile]]) -> None:
        """Copy, change, swap, under one lock: the cloud's device lists (publisher thread)
        and a clock offset measured over Bluetooth (a source) never overwrite each other."""
        with self._devices_lock:
            self.devices = dict(change(dict(self.devices)))

    def set_clock_offset(self, device_id: str, offset_s: float) -> None:
        """A device clock offset measured while running, for the readings after it."""
        self.update_devices(lambda devices: {
            **devices, device_id: replace(devices.get(device_id)
                                          or DeviceProfile(check_id(device_id, "device")),
                                          clock_offset_s=offset_s)})

    def take(self, device_id: str, observations: Sequence[Observation],
             cursor: tuple[str, str] | None = None) -> list[Reading]:
        return self.take_many([(device_id, obs) for obs in observations], cursor)

    def take_many(self, items: Sequence[tuple[str, Observation]],
                  cursor: tuple[str, str] | None = None) -> list[Reading]:
        """Like ``take`` for observations of several devices, in one transaction."""
        received = self._clock()
        known = self.devices  # one mapping for the whole call (it may be replaced meanwhile)
        drafts = [self._draft(known.get(dev) or DeviceProfile(check_id(dev, "device")), obs,
                              received)
                  for dev, obs in items]
        devices = ", ".join(sorted({dev for dev, _ in items}))
        try:
            taken = self.outbox.put(drafts, cursor)
        except OutboxFull as exc:
            with self._lock:
                self.refused += len(drafts)
            log.error("device %s: %s", devices, exc)
            raise
        for wake in self._wake:
            wake()
        for watch in self._watchers:
            try:
                watch(taken)
            except Exception:  # an alarm evaluation bug must not refuse the device's data
                log.exception("reading watcher failed")
        return taken

    def _draft(self, profile: DeviceProfile, obs: Observation, received: datetime) -> Reading:
        fix = correct(obs.device_time, received, clock_offset_s=profile.clock_offset_s,
                      tz=profile.tz)
        flags = obs.flags if fix.trusted else (*obs.flags, f"time_untrusted:{fix.reason}")
        rid = reading_id(profile.device_id, str(obs.kind), fix.device_time, obs.sequence,
                         obs.original_value if obs.original_value is not None else obs.value,
                         obs.original_unit or obs.unit, received)
        return Reading(
            id=rid, gateway_id=self.gateway_id, device_id=profile.device_id,
            patient_id=profile.attribute(obs), stream_seq=0, kind=Kind(obs.kind),
            value=obs.value, unit=obs.unit, measured_at=fix.measured_at, received_at=received,
            device_time=fix.device_time, clock_offset_s=fix.clock_offset_s,
            time_zone=fix.time_zone, time_trusted=fix.trusted,
            original_value=obs.original_value, original_unit=obs.original_unit,
            device_sequence=obs.sequence, flags=tuple(flags))
