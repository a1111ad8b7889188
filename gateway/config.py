"""Gateway configuration (TOML). Paths are relative to the configuration file.

    [gateway]
    id = "gw-home-1"              # pseudonymous gateway id (topic and tag)
    site = "home-1"               # care site (home or EHPAD)
    outbox = "outbox.sqlite3"
    outbox_capacity = 100000      # readings; when full, devices are refused, never dropped
    exit_when_done = false        # stop once every source finished and the outbox is empty
    drain_timeout_s = 5           # on SIGTERM, keep publishing this long to empty the outbox

    [mqtt]
    host = "127.0.0.1"
    port = 1883
    batch_size = 200              # readings per MQTT message
    max_inflight = 16             # unacknowledged messages
    keepalive = 30                # seconds; the broker publishes our last will after 1.5x

    [[devices]]
    id = "scale-1"
    patient = "p-001"             # omit for a shared device
    users = { "1" = "p-001" }     # multi-user scale: user index -> patient
    patients = { "A123" = "p-002" } # ASTM patient id -> patient
    clock_offset_s = 0            # device clock minus true time
    tz = "Europe/Paris"           # zone of the device's naive local time

    [[sources]]
    type = "replay"               # or "sim"
    name = "file-1"
    path = "readings.jsonl"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.intake import DeviceProfile
from gateway.publisher import PublisherSettings
from gateway.timefix import zone
from vigie.contract import ContractError, check_id


@dataclass
class GatewayConfig:
    gateway_id: str
    site: str | None
    outbox: Path
    outbox_capacity: int
    exit_when_done: bool
    drain_timeout_s: float
    mqtt: PublisherSettings
    devices: dict[str, DeviceProfile] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)


def load(path: Path) -> GatewayConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return _build(raw, path.parent)
    except ContractError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: missing or bad setting: {exc}") from exc


def _build(raw: dict[str, Any], base: Path) -> GatewayConfig:
    gw = raw["gateway"]
    mq = raw.get("mqtt", {})
    gateway_id = check_id(gw["id"], "gateway")
    site = gw.get("site")
    mqtt = PublisherSettings(
        host=str(mq.get("host", "127.0.0.1")), port=int(mq.get("port", 1883)),
        client_id=mq.get("client_id"), keepalive=int(mq.get("keepalive", 30)),
        batch_size=int(mq.get("batch_size", 200)),
        max_inflight=int(mq.get("max_inflight", 16)),
        heartbeat_s=float(mq.get("heartbeat_s", 60)),
        site=None if site is None else check_id(site, "site"))
    devices = {d["id"]: _device(d) for d in raw.get("devices", [])}
    sources = [dict(s) for s in raw.get("sources", [])]
    for src in sources:
        if "path" in src:
            src["path"] = str((base / src["path"]).resolve())
        src.setdefault("name", f"{src.get('type', 'source')}-{sources.index(src) + 1}")
    return GatewayConfig(
        gateway_id=gateway_id, site=mqtt.site, outbox=(base / gw.get("outbox", "outbox.sqlite3")),
        outbox_capacity=int(gw.get("outbox_capacity", 100_000)),
        exit_when_done=bool(gw.get("exit_when_done", False)),
        drain_timeout_s=float(gw.get("drain_timeout_s", 5)), mqtt=mqtt, devices=devices,
        sources=sources)


def _device(d: dict[str, Any]) -> DeviceProfile:
    tz = str(d.get("tz", "UTC"))
    zone(tz)
    patient = d.get("patient")
    return DeviceProfile(
        device_id=check_id(d["id"], "device"),
        patient_id=None if patient is None else check_id(patient, "patient"),
        users={int(k): check_id(v, "patient") for k, v in d.get("users", {}).items()},
        patients={str(k): check_id(v, "patient") for k, v in d.get("patients", {}).items()},
        clock_offset_s=float(d.get("clock_offset_s", 0.0)), tz=tz)
