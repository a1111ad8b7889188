"""Gateway configuration (TOML). Paths are relative to the configuration file.

    [gateway]
    id = "gw-home-1"              # pseudonymous gateway id (topic and tag)
    site = "home-1"               # care site (home or EHPAD)
    outbox = "outbox.sqlite3"
    outbox_capacity = 100000      # readings; when full, devices are refused, never dropped
    outbox_reserve_bytes = 1048576  # disk kept back so acknowledged readings can be deleted
    exit_when_done = false        # stop once every source finished and the outbox is empty
    drain_timeout_s = 5           # on SIGTERM, keep publishing this long to empty the outbox
    seen_days = 30                # ids of sent readings remembered this long (to spot resends)

    [mqtt]
    host = "127.0.0.1"
    port = 1883
    batch_size = 200              # readings per MQTT message
    max_inflight = 16             # unacknowledged messages
    keepalive = 30                # seconds; the broker publishes our last will after 1.5x
    tls_ca = "ca.crt"             # secure profile (docs/security.md): TLS, broker checked
    tls_cert = "client.crt"       #   against this CA; this gateway's certificate and key
    tls_key = "client.key"        #   (from `vigie pki gateway`); omit all three: plain MQTT
    confirm_timeout_s = 600       # sent, not yet confirmed stored by the cloud: send again
    confirm_timeout_max_s = 21600 #   after this, doubling with each copy up to this, and
    resend_after_reconnect_s = 5  #   from this after a reconnect (docs/operator.md)

    [[devices]]                   # the base: the cloud's device list overrides the patient
    id = "scale-1"                #   of a device it names (gateway/assignments.py)
    patient = "p-001"             # omit for a shared device
    users = { "1" = "p-001" }     # multi-user scale: user index -> patient
    patients = { "A123" = "p-002" } # ASTM patient id -> patient
    clock_offset_s = 0            # device clock minus true time
    tz = "Europe/Paris"           # zone of the device's naive local time

    [[sources]]
    type = "replay"               # or "sim"
    name = "file-1"
    path = "readings.jsonl"

    [alarms]                      # urgent alarms on site when the cloud is unreachable
    host = "127.0.0.1"            #   (gateway/edge.py): the EHPAD's local broker, where the
    port = 1883                   #   nurse console listens (topic of [gateway] site)
    offline_after_s = 60          # page here once the cloud link is down this long
    language = "fr"               # of the page's title and texts: en (default) | fr
    rules = ["dm.hypoglycaemia", "dm.urgent_low_soon", "hf.bp_systolic", "hf.heart_rate"]
    rules_file = "rules.toml"     # thresholds and patient settings, as for `vigie replay`
    db = "alarms.sqlite3"
"""

from __future__ import annotations

import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.messages import DEFAULT_LANGUAGE, LANGUAGES
from alerting.notify.config import MqttSettings
from alerting.rules import default_rules
from alerting.settings import AlertingError, RulesConfig, load_config
from gateway.edge import DEFAULT_EDGE_RULES, EdgeSettings
from gateway.errors import ConfigError
from gateway.intake import DeviceProfile
from gateway.outbox import ResendPolicy
from gateway.publisher import PublisherSettings
from gateway.timefix import zone
from vigie.contract import ContractError, check_id


@dataclass
class GatewayConfig:
    gateway_id: str
    site: str | None
    outbox: Path
    outbox_capacity: int
    outbox_reserve_bytes: int
    exit_when_done: bool
    drain_timeout_s: float
    mqtt: PublisherSettings
    devices: dict[str, DeviceProfile] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    alarms: EdgeSettings | None = None  # None: no alarms on site
    seen_days: float = 30.0  # how long the ids of sent readings are remembered (resends)


MIN_RESERVE_BYTES = 256 * 1024  # the WAL index (32 KiB) and a few deletes' worth of WAL


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
    tls = _tls(mq, base)
    mqtt = PublisherSettings(
        host=str(mq.get("host", "127.0.0.1")), port=int(mq.get("port", 1883)),
        client_id=mq.get("client_id"), keepalive=int(mq.get("keepalive", 30)),
        batch_size=int(mq.get("batch_size", 200)),
        max_inflight=int(mq.get("max_inflight", 16)),
        heartbeat_s=float(mq.get("heartbeat_s", 60)),
        site=None if site is None else check_id(site, "site"),
        tls_ca=tls["tls_ca"], tls_cert=tls["tls_cert"], tls_key=tls["tls_key"],
        resend=_resend(mq))
    devices = {d["id"]: _device(d) for d in raw.get("devices", [])}
    sources = [dict(s) for s in raw.get("sources", [])]
    for src in sources:
        if "path" in src:
            src["path"] = str((base / src["path"]).resolve())
        src.setdefault("name", f"{src.get('type', 'source')}-{sources.index(src) + 1}")
    reserve = int(gw.get("outbox_reserve_bytes", 1 << 20))
    if 0 < reserve < MIN_RESERVE_BYTES:
        raise ValueError(f"outbox_reserve_bytes = {reserve}: use 0 (no reserve) or at least "
                         f"{MIN_RESERVE_BYTES} (SQLite needs that much to delete on a full disk)")
    return GatewayConfig(
        gateway_id=gateway_id, site=mqtt.site, outbox=(base / gw.get("outbox", "outbox.sqlite3")),
        outbox_capacity=int(gw.get("outbox_capacity", 100_000)),
        outbox_reserve_bytes=reserve,
        seen_days=float(gw.get("seen_days", 30.0)),
        exit_when_done=bool(gw.get("exit_when_done", False)),
        drain_timeout_s=float(gw.get("drain_timeout_s", 5)), mqtt=mqtt, devices=devices,
        sources=sources, alarms=_alarms(raw.get("alarms"), gateway_id, mqtt.site, base))


def _alarms(al: dict[str, Any] | None, gateway_id: str, site: str | None, base: Path
            ) -> EdgeSettings | None:
    if al is None:
        return None
    if site is None:
        raise ValueError("[alarms] needs [gateway] site (the nurse console topic is per site)")
    files = {k: None if al.get(k) is None else str((base / str(al[k])).resolve())
             for k in ("tls_ca", "tls_cert", "tls_key")}
    broker = MqttSettings(host=str(al.get("host", "127.0.0.1")), port=int(al.get("port", 1883)),
                          client_id=str(al.get("client_id", f"vigie-gw-{gateway_id}-alarms")),
                          **files)
    rules_config = RulesConfig()
    if al.get("rules_file") is not None:
        try:
            rules_config = load_config(base / str(al["rules_file"]))
        except AlertingError as exc:
            raise ValueError(f"[alarms] rules_file: {exc}") from exc
    rules = tuple(str(r) for r in al.get("rules", DEFAULT_EDGE_RULES))
    unknown = set(rules) - {r.id for r in default_rules()}
    if unknown:
        raise ValueError(f"[alarms] unknown rules {sorted(unknown)}")
    language = al.get("language", DEFAULT_LANGUAGE)
    if language not in LANGUAGES:
        raise ValueError(f"[alarms] language: unknown language {language!r} "
                         f"(known: {', '.join(LANGUAGES)})")
    return EdgeSettings(site=site, local_broker=broker, db=base / str(al.get("db",
                        "alarms.sqlite3")), rules=rules,
                        offline_after_s=float(al.get("offline_after_s", 60.0)),
                        rules_config=rules_config, language=language)


def _resend(mq: dict[str, Any]) -> ResendPolicy:
    default = ResendPolicy()
    policy = ResendPolicy(
        timeout_s=float(mq.get("confirm_timeout_s", default.timeout_s)),
        max_s=float(mq.get("confirm_timeout_max_s", default.max_s)),
        after_reconnect_s=float(mq.get("resend_after_reconnect_s", default.after_reconnect_s)))
    if not 0 < policy.after_reconnect_s <= policy.max_s or not 0 < policy.timeout_s <= policy.max_s:
        raise ValueError("confirm_timeout_s and resend_after_reconnect_s must be above 0 and at "
                         "most confirm_timeout_max_s")
    return policy


def _tls(mq: dict[str, Any], base: Path) -> dict[str, str | None]:
    """TLS files of [mqtt], resolved and loaded once here so that a bad one is a config error
    at start, not a traceback from the publisher thread."""
    files = {k: None if mq.get(k) is None else str((base / str(mq[k])).resolve())
             for k in ("tls_ca", "tls_cert", "tls_key")}
    if files["tls_ca"] is None:
        if files["tls_cert"] or files["tls_key"]:
            raise ValueError("tls_cert/tls_key need tls_ca (the CA that signed the broker)")
        return files
    if (files["tls_cert"] is None) != (files["tls_key"] is None):
        raise ValueError("tls_cert and tls_key go together")
    try:
        ctx = ssl.create_default_context(cafile=files["tls_ca"])
        if files["tls_cert"] is not None:
            ctx.load_cert_chain(files["tls_cert"], files["tls_key"])
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TLS files of [mqtt]: {exc}") from exc
    return files


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
