"""Device assignments from the cloud: who a device's readings belong to, as nurses set it.

The TOML's ``[[devices]]`` are the base. The cloud publishes the gateway's device list
(retained, QoS 1, ``vigie.contract.devices_config_topic``; ``cloud_api.gateway_config``); the
publisher hands each message to ``DeviceAssignments.receive`` on its thread. A valid list is
saved beside the outbox (temporary file, fsync, rename) and applied: each listed device
replaces the TOML's patient (or lack of one) for that id and keeps the TOML-only fields (time
zone, clock offset, user and patient maps); a device the list does not name keeps its TOML
entry; a clock offset measured at run time (``gateway.sources.ble``) is kept. The Intake's
mapping is replaced in one assignment (``Intake.replace_devices``). At
start, ``load`` applies the saved list, so assignments survive restarts and a broker that is
down. A malformed list is logged and ignored (the previous one stays); a list older than the
one applied is ignored (a stale retained copy).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from gateway.intake import DeviceProfile, Intake
from vigie.contract import ContractError, GatewayDevices, decode_gateway_devices

log = logging.getLogger(__name__)


def assignments_path(outbox: Path) -> Path:
    """Where the last device list from the cloud is kept: beside the outbox, named after it
    (``outbox.sqlite3`` -> ``outbox.devices.json``)."""
    return outbox.with_name(f"{outbox.stem}.devices.json")


def merge(base: Mapping[str, DeviceProfile], cloud: GatewayDevices | None
          ) -> dict[str, DeviceProfile]:
    """The TOML's devices with the cloud's assignments laid over them."""
    merged = dict(base)
    for entry in cloud.devices if cloud else ():
        known = base.get(entry.device_id)
        merged[entry.device_id] = (DeviceProfile(entry.device_id, entry.patient_id)
                                   if known is None
                                   else replace(known, patient_id=entry.patient_id))
    return merged


def _describe(profile: DeviceProfile | None, shared: bool) -> str:
    if profile is not None and profile.patient_id is not None:
        return f"attributed to patient {profile.patient_id}"
    if shared or (profile is not None and (profile.users or profile.patients)):
        return "shared"
    return "unattributed"


class DeviceAssignments:
    def __init__(self, gateway_id: str, base: Mapping[str, DeviceProfile], intake: Intake,
                 path: Path) -> None:
        self.gateway_id = gateway_id
        self.base = dict(base)
        self.intake = intake
        self.path = path
        self.current: GatewayDevices | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Apply the list saved by an earlier run, if any (a bad file is logged, not fatal:
        the TOML's devices apply until the cloud sends a list again)."""
        try:
            payload = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("cannot read the saved device list %s (%s); using the TOML devices",
                      self.path, exc)
            return
        try:
            devices = decode_gateway_devices(payload, self.gateway_id)
        except ContractError as exc:
            log.error("ignoring the saved device list %s: %s", self.path, exc)
            return
        with self._lock:
            self._apply(devices)
        log.info("device list version %d loaded from %s", devices.version, self.path)

    def receive(self, payload: bytes) -> None:
        """A device list from the cloud (publisher thread). Never raises."""
        if not payload:
            log.info("the cloud cleared this gateway's device list; keeping the last one")
            return
        try:
            devices = decode_gateway_devices(payload, self.gateway_id)
        except ContractError as exc:
            log.error("bad device list from the cloud, keeping the previous one: %s", exc)
            return
        with self._lock:
            if self.current is not None and devices.version < self.current.version:
                log.warning("ignoring device list version %d: version %d is applied",
                            devices.version, self.current.version)
                return
            if devices == self.current:
                return  # the retained copy again, after a reconnect
            try:
                self._save(devices.encode())
            except OSError as exc:  # applied anyway; a restart falls back to the older file
                log.error("cannot save the device list to %s: %s", self.path, exc)
            self._apply(devices)
        log.info("device list version %d from the cloud applied (%d device(s))",
                 devices.version, len(devices.devices))

    def _apply(self, devices: GatewayDevices) -> None:
        before = self.intake.devices
        was_shared = {d.device_id for d in self.current.devices if d.shared} \
            if self.current else set()
        now_shared = {d.device_id for d in devices.devices if d.shared}

        def change(current: dict[str, DeviceProfile]) -> dict[str, DeviceProfile]:
            nonlocal before
            before = current
            after = merge(self.base, devices)
            for device, profile in after.items():  # a clock offset measured (BLE) stays
                known = current.get(device)
                if known is not None and known.clock_offset_s != profile.clock_offset_s:
                    after[device] = replace(profile, clock_offset_s=known.clock_offset_s)
            return after

        self.intake.update_devices(change)
        after = self.intake.devices
        self.current = devices
        for device in sorted(set(before) | set(after)):
            old = _describe(before.get(device), device in was_shared)
            new = _describe(after.get(device), device in now_shared)
            if old != new:
                log.info("device %s now %s", device, new)

    def _save(self, data: bytes) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):  # the rename itself durable (not on every fs)
            dirfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
