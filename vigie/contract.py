"""The shared contract of Vigie: what a reading is, in which unit, on which MQTT topic.

Every package imports this module and nothing else from its neighbours, so it stays small.
Bump ``SCHEMA_VERSION`` (and the topic prefix) on any incompatible change to the payload.

- ``Observation``: what a device driver decodes from bytes (no patient, no gateway).
- ``Reading``: an observation taken by a gateway: attributed, time-corrected, with a
  deterministic id and a per-device stream sequence number. This is what travels over MQTT.
- ``Batch``: the JSON payload published on ``observations_topic(gateway_id)``.
- ``encode_stored``/``decode_stored``: the reading ids the cloud confirms durable, on
  ``stored_topic(gateway_id)``; the gateway deletes a reading only then.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

SCHEMA_VERSION: Final = 1

# -- limits on what crosses the wire (docs/security.md, "What ingest checks") ---------------
MAX_PAYLOAD_BYTES: Final = 1 << 20  # one MQTT message; the broker's max_packet_size is above
MAX_JSON_DEPTH: Final = 8  # a batch is 3 deep (envelope, readings list, reading)
MAX_READINGS_PER_BATCH: Final = 5_000
MAX_INT: Final = (1 << 63) - 1  # integers are stored in 64-bit columns and InfluxDB fields
# Measurement times: after TIME_FLOOR, and no later than the time the reading was received
# plus FUTURE_ALLOWANCE (clock skew between a device, its gateway and the cloud).
TIME_FLOOR: Final = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_ALLOWANCE: Final = timedelta(hours=1)
TOPIC_PREFIX: Final = "vigie/v1"


class Kind(StrEnum):
    """Canonical observation kinds (architecture brief, 'Canonical observations')."""

    GLUCOSE = "glucose"
    WEIGHT = "weight"
    BP_SYSTOLIC = "bp_systolic"
    BP_DIASTOLIC = "bp_diastolic"
    BP_MEAN = "bp_mean"
    HEART_RATE = "heart_rate"
    SPO2 = "spo2"
    BODY_TEMPERATURE = "body_temperature"
    INR = "inr"
    HBA1C = "hba1c"
    NT_PROBNP = "nt_probnp"
    CRP = "crp"
    CREATININE = "creatinine"
    BATTERY_LEVEL = "battery_level"
    UNKNOWN = "unknown"


# UCUM units in which each kind is stored. Converted at the edge, original kept beside.
CANONICAL_UNIT: Final[Mapping[Kind, str]] = {
    Kind.GLUCOSE: "mg/dL",
    Kind.WEIGHT: "kg",
    Kind.BP_SYSTOLIC: "mm[Hg]",
    Kind.BP_DIASTOLIC: "mm[Hg]",
    Kind.BP_MEAN: "mm[Hg]",
    Kind.HEART_RATE: "/min",
    Kind.SPO2: "%",
    Kind.BODY_TEMPERATURE: "Cel",
    Kind.INR: "{INR}",
    Kind.HBA1C: "%",
    Kind.NT_PROBNP: "pg/mL",
    Kind.CRP: "mg/L",
    Kind.CREATININE: "umol/L",
    Kind.BATTERY_LEVEL: "%",
    Kind.UNKNOWN: "",
}

# LOINC codes (default one per kind; checked against loinc.org search results).
LOINC: Final[Mapping[Kind, str]] = {
    Kind.GLUCOSE: "41653-7",
    Kind.WEIGHT: "29463-7",
    Kind.BP_SYSTOLIC: "8480-6",
    Kind.BP_DIASTOLIC: "8462-4",
    Kind.BP_MEAN: "8478-0",
    Kind.HEART_RATE: "8867-4",
    Kind.SPO2: "59408-5",
    Kind.BODY_TEMPERATURE: "8310-5",
    Kind.INR: "34714-6",
    Kind.HBA1C: "4548-4",
    Kind.NT_PROBNP: "33762-6",
    Kind.CRP: "1988-5",
    Kind.CREATININE: "2160-0",
}

# Physiologically possible ranges in the canonical unit. A value outside is not a reading
# to act on: ingest quarantines it with the reason instead of storing it.
PLAUSIBLE_RANGE: Final[Mapping[Kind, tuple[float, float]]] = {
    Kind.GLUCOSE: (10.0, 1500.0),
    Kind.WEIGHT: (2.0, 400.0),
    Kind.BP_SYSTOLIC: (40.0, 300.0),
    Kind.BP_DIASTOLIC: (20.0, 200.0),
    Kind.BP_MEAN: (25.0, 250.0),
    Kind.HEART_RATE: (20.0, 300.0),
    Kind.SPO2: (40.0, 100.0),
    Kind.BODY_TEMPERATURE: (25.0, 45.0),
    Kind.INR: (0.5, 15.0),
    Kind.HBA1C: (3.0, 20.0),
    Kind.NT_PROBNP: (0.0, 100000.0),
    Kind.CRP: (0.0, 1000.0),
    Kind.CREATININE: (5.0, 3000.0),
    Kind.BATTERY_LEVEL: (0.0, 100.0),
}

# Exact conversion factors used at the edge.
MGDL_PER_MMOLL: Final = 18.016
KG_PER_LB: Final = 0.45359237
MMHG_PER_KPA: Final = 7.50062

_ID_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def loads_bounded(payload: bytes | bytearray | str, max_bytes: int = MAX_PAYLOAD_BYTES,
                  max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for input nobody vouched for: refuses, with ContractError, a payload
    over ``max_bytes``, one that is not UTF-8 JSON, one whose numbers do not fit (Python's
    digit limit, infinities written as ``1e999``) and one nested deeper than ``max_depth``.
    The depth is checked on the parsed tree without recursion, so no later ``json.dumps``
    or walk of the value can exhaust the stack."""
    size = len(payload)
    if size > max_bytes:
        raise ContractError(f"payload of {size} bytes is over the limit of {max_bytes}",
                            "too-large")
    try:
        body = json.loads(payload)
    except RecursionError as exc:
        raise ContractError(f"payload nested deeper than {max_depth} levels",
                            "too-deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, int digit limit
        raise ContractError(f"payload is not JSON: {str(exc)[:200]}", "not-json") from exc
    level: list[Any] = [body]
    for _ in range(max_depth):
        level = [v for c in level if isinstance(c, dict | list)
                 for v in (c.values() if isinstance(c, dict) else c)]
        if not level:
            return body
    if any(isinstance(c, dict | list) for c in level):
        raise ContractError(f"payload nested deeper than {max_depth} levels", "too-deep")
    return body


def check_int(raw: Any, what: str, *, low: int = 0, high: int = MAX_INT) -> int:
    """An integer of the payload within [low, high] (booleans are not integers here)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ContractError(f"field {what!r} must be an integer in {low}-{high}, "
                            f"got {str(raw)[:40]!r}")
    return raw


class ContractError(ValueError):
    """Input that breaks the contract. ``code`` is a short, fixed word naming the class of
    fault (quarantine counts and metrics are kept by it); the message says the detail."""

    def __init__(self, message: str, code: str = "schema") -> None:
        super().__init__(message)
        self.code = code


def check_id(value: str, what: str) -> str:
    """Validate an identifier that appears in topics and tags (gateway, device, patient)."""
    if not isinstance(value, str) or not _ID_PART.fullmatch(value):
        raise ContractError(f"invalid {what} id {value!r}: use 1-128 of [A-Za-z0-9_.:-]")
    return value


def observations_topic(gateway_id: str) -> str:
    return f"{TOPIC_PREFIX}/gateways/{check_id(gateway_id, 'gateway')}/observations"


def status_topic(gateway_id: str) -> str:
    return f"{TOPIC_PREFIX}/gateways/{check_id(gateway_id, 'gateway')}/status"


OBSERVATIONS_SUBSCRIPTION: Final = f"{TOPIC_PREFIX}/gateways/+/observations"
STATUS_SUBSCRIPTION: Final = f"{TOPIC_PREFIX}/gateways/+/status"


def alarms_topic(gateway_id: str) -> str:
    """Urgent alarms a gateway paged on site while the cloud was unreachable (``EdgeAlarm``)."""
    return f"{TOPIC_PREFIX}/gateways/{check_id(gateway_id, 'gateway')}/alarms"


ALARMS_SUBSCRIPTION: Final = f"{TOPIC_PREFIX}/gateways/+/alarms"


def nurse_console_topic(site: str) -> str:
    """An EHPAD's on-site nurse console (QoS 1, never retained: a page is an event)."""
    return f"{TOPIC_PREFIX}/sites/{check_id(site, 'site')}/nurse-console"


def alarm_id(patient_id: str, rule: str, reading_id: str) -> str:
    """Deterministic id of an alarm: the gateway and the cloud derive the same one for the
    same event (same patient, rule and reading), which is how the cloud knows the site's
    nurses were already paged."""
    parts = ("alarm", patient_id, rule, reading_id)
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class EdgeAlarm:
    """One alarm a gateway paged on site; a list of them is the payload of ``alarms_topic``:
    ``{"v": 1, "gateway": ..., "alarms": [EdgeAlarm.to_json(), ...]}``."""

    patient_id: str
    rule: str
    reading_id: str
    severity: str
    message: str
    value: float | None
    measured_at: datetime
    paged_at: datetime

    @property
    def id(self) -> str:
        return alarm_id(self.patient_id, self.rule, self.reading_id)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "patient": self.patient_id, "rule": self.rule,
                "reading": self.reading_id, "severity": self.severity, "message": self.message,
                "value": self.value, "measured_at": iso(self.measured_at),
                "paged_at": iso(self.paged_at)}

    @classmethod
    def from_json(cls, obj: Any) -> EdgeAlarm:
        if not isinstance(obj, dict):
            raise ContractError("an alarm must be a JSON object")
        alarm = cls(check_id(_req_str(obj, "patient"), "patient"), _req_str(obj, "rule"),
                    _req_str(obj, "reading"), _req_str(obj, "severity"),
                    _req_str(obj, "message", MAX_MESSAGE), _num(obj, "value", optional=True),
                    parse_iso(_req_str(obj, "measured_at")), parse_iso(_req_str(obj, "paged_at")))
        if obj.get("id") != alarm.id:
            raise ContractError(f"alarm id {obj.get('id')!r} does not match its event")
        return alarm


def encode_alarms(gateway_id: str, alarms: list[EdgeAlarm]) -> bytes:
    body = {"v": SCHEMA_VERSION, "gateway": gateway_id, "alarms": [a.to_json() for a in alarms]}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_alarms(payload: bytes, topic_gateway: str) -> list[EdgeAlarm]:
    body = _envelope(payload, topic_gateway, "alarms")
    raw = body.get("alarms")
    if not isinstance(raw, list):
        raise ContractError("field 'alarms' must be a list")
    return [EdgeAlarm.from_json(a) for a in raw]


def gateway_from_topic(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{TOPIC_PREFIX}/gateways":
        raise ContractError(f"not a Vigie gateway topic: {topic!r}")
    return check_id(parts[3], "gateway")


def utc(ts: datetime) -> datetime:
    """Return an aware UTC datetime; naive datetimes are refused (time must be explicit)."""
    if ts.tzinfo is None:
        raise ContractError(f"naive datetime {ts.isoformat()} where an aware one is required")
    return ts.astimezone(UTC)


def iso(ts: datetime) -> str:
    return utc(ts).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        # OverflowError: year 1 or 9999 moved across midnight by its offset
        raise ContractError(f"bad timestamp {str(text)[:40]!r}") from exc


@dataclass(frozen=True, slots=True)
class Observation:
    """One value decoded from a device, in canonical units, before attribution.

    ``value`` is None when the device sent a special value (NaN, NRes, +/-INF); ``flags``
    then says which. ``device_time`` is the device's own clock, naive when the device does not
    know its time zone, None when it sent no time. ``sequence`` is the device's record number
    where the protocol has one; ``user_index`` the device's user slot (multi-user scales);
    ``patient_ref`` a patient id carried by the protocol (ASTM Patient record).
    """

    kind: Kind
    value: float | None
    unit: str
    device_time: datetime | None = None
    original_value: float | None = None
    original_unit: str | None = None
    sequence: int | None = None
    user_index: int | None = None
    patient_ref: str | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """An observation taken by a gateway: what the cloud receives, one per value."""

    id: str
    gateway_id: str
    device_id: str
    patient_id: str | None
    stream_seq: int
    kind: Kind
    value: float | None
    unit: str
    measured_at: datetime  # corrected measurement time, UTC: the time rules and storage use
    received_at: datetime  # gateway clock when the gateway took it, UTC
    device_time: str | None  # the device's own time, as it sent it (ISO, maybe naive)
    clock_offset_s: float  # device clock minus gateway clock, removed from device_time
    time_zone: str | None  # zone used to read a naive device time
    time_trusted: bool  # False when measured_at could not be derived from the device time
    original_value: float | None = None
    original_unit: str | None = None
    device_sequence: int | None = None
    flags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device": self.device_id,
            "patient": self.patient_id,
            "seq": self.stream_seq,
            "kind": str(self.kind),
            "value": self.value,
            "unit": self.unit,
            "measured_at": iso(self.measured_at),
            "received_at": iso(self.received_at),
            "device_time": self.device_time,
            "clock_offset_s": self.clock_offset_s,
            "tz": self.time_zone,
            "time_trusted": self.time_trusted,
            "original_value": self.original_value,
            "original_unit": self.original_unit,
            "device_seq": self.device_sequence,
            "flags": list(self.flags),
        }


def reading_id(
    device_id: str,
    kind: str,
    device_time: str | None,
    device_sequence: int | None,
    original_value: float | None,
    original_unit: str | None,
    received_at: datetime | None = None,
) -> str:
    """Deterministic id of a reading: the same device record always gets the same id.

    Built from what the device sent (its id, the kind, its own time, its record number, the
    raw value and unit). When the device sends neither a time nor a record number, nothing
    distinguishes a resend from a new reading, so the gateway's receive time is mixed in.
    """
    parts = [device_id, kind, device_time or "", "" if device_sequence is None else
             str(device_sequence), repr(original_value), original_unit or ""]
    if device_time is None and device_sequence is None:
        parts.append(iso(received_at) if received_at else "")
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return digest


_READING_ID = re.compile(r"[0-9a-f]{32}")


def is_reading_id(value: object) -> bool:
    """Whether ``value`` has the form ``reading_id`` gives (32 lowercase hex digits)."""
    return isinstance(value, str) and _READING_ID.fullmatch(value) is not None


def _num(obj: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    raw = obj.get(key)
    if raw is None and optional:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ContractError(f"field {key!r} must be a number, got {str(raw)[:40]!r}")
    try:
        value = float(raw)  # an int too large for a float raises OverflowError
    except OverflowError as exc:
        raise ContractError(f"field {key!r} is out of range") from exc
    if not math.isfinite(value):
        raise ContractError(f"field {key!r} must be finite, got {raw!r}")
    return value


MAX_TEXT: Final = 256  # characters of a string field (alarm messages: MAX_MESSAGE)
MAX_MESSAGE: Final = 2_000
MAX_FLAGS: Final = 32


def _req_str(obj: Mapping[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    raw = obj.get(key)
    if not isinstance(raw, str):
        raise ContractError(f"field {key!r} must be a string, got {str(raw)[:40]!r}")
    if len(raw) > limit:
        raise ContractError(f"field {key!r} is longer than {limit} characters")
    return raw


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    return None if obj.get(key) is None else _req_str(obj, key)


def reading_from_json(obj: Any, gateway_id: str) -> Reading:
    """Validate one reading of a batch; raises ContractError with the reason."""
    if not isinstance(obj, dict):
        raise ContractError("a reading must be a JSON object")
    rid = _req_str(obj, "id")
    if not is_reading_id(rid):
        raise ContractError(f"bad reading id {rid!r}")
    kind_raw = _req_str(obj, "kind")
    try:
        kind = Kind(kind_raw)
    except ValueError as exc:
        raise ContractError(f"unknown kind {kind_raw!r}") from exc
    seq = check_int(obj.get("seq"), "seq")
    dseq = obj.get("device_seq")
    if dseq is not None:
        dseq = check_int(dseq, "device_seq", low=-MAX_INT - 1)
    patient = _opt_str(obj, "patient")
    flags = obj.get("flags", [])
    if not isinstance(flags, list) or len(flags) > MAX_FLAGS \
            or not all(isinstance(f, str) and len(f) <= MAX_TEXT for f in flags):
        raise ContractError(f"field 'flags' must be a list of at most {MAX_FLAGS} strings")
    trusted = obj.get("time_trusted")
    if not isinstance(trusted, bool):
        raise ContractError("field 'time_trusted' must be a boolean")
    device = _req_str(obj, "device")
    unit = _req_str(obj, "unit")
    return Reading(
        id=rid,
        gateway_id=check_id(gateway_id, "gateway"),
        device_id=check_id(device, "device"),
        patient_id=None if patient is None else check_id(patient, "patient"),
        stream_seq=seq,
        kind=kind,
        value=_num(obj, "value", optional=True),
        unit=unit,
        measured_at=parse_iso(_req_str(obj, "measured_at")),
        received_at=parse_iso(_req_str(obj, "received_at")),
        device_time=_opt_str(obj, "device_time"),
        clock_offset_s=_num(obj, "clock_offset_s") or 0.0,
        time_zone=_opt_str(obj, "tz"),
        time_trusted=trusted,
        original_value=_num(obj, "original_value", optional=True),
        original_unit=_opt_str(obj, "original_unit"),
        device_sequence=dseq,
        flags=tuple(flags),
    )


@dataclass(frozen=True, slots=True)
class Batch:
    gateway_id: str
    sent_at: datetime
    readings: tuple[dict[str, Any], ...]  # raw reading objects, validated one by one on ingest
    site: str | None = None  # care site of the gateway (home or EHPAD), a tag in storage

    def encode(self) -> bytes:
        body = {"v": SCHEMA_VERSION, "gateway": self.gateway_id, "site": self.site,
                "sent_at": iso(self.sent_at), "readings": list(self.readings)}
        return json.dumps(body, separators=(",", ":")).encode()


def decode_batch(payload: bytes, topic_gateway: str) -> Batch:
    """Parse a batch envelope. Readings inside are validated separately (one bad reading must
    not reject its neighbours). Raises ContractError on a malformed envelope."""
    body = loads_bounded(payload)
    if not isinstance(body, dict):
        raise ContractError("payload must be a JSON object")
    if body.get("v") != SCHEMA_VERSION:
        raise ContractError(f"unsupported schema version {body.get('v')!r}")
    if body.get("gateway") != topic_gateway:
        raise ContractError(
            f"payload gateway {body.get('gateway')!r} does not match topic {topic_gateway!r}")
    readings = body.get("readings")
    if not isinstance(readings, list):
        raise ContractError("field 'readings' must be a list")
    if len(readings) > MAX_READINGS_PER_BATCH:
        raise ContractError(f"{len(readings)} readings in one batch, over the limit of "
                            f"{MAX_READINGS_PER_BATCH}")
    site = _opt_str(body, "site")
    return Batch(topic_gateway, parse_iso(_req_str(body, "sent_at")), tuple(readings),
                 None if site is None else check_id(site, "site"))


def plausibility_problem(kind: Kind, value: float | None, unit: str) -> str | None:
    """Return why a value cannot be a real reading, or None when it can."""
    expected = CANONICAL_UNIT[kind]
    if kind is not Kind.UNKNOWN and unit != expected:
        return f"{kind} must be in {expected!r}, got {unit!r}"
    if value is None:
        return None  # special value from the device: stored as flagged, no number
    bounds = PLAUSIBLE_RANGE.get(kind)
    if bounds and not bounds[0] <= value <= bounds[1]:
        return f"{kind} {value:g} {unit} outside the possible range {bounds[0]:g}-{bounds[1]:g}"
    return None


def time_problem(measured_at: datetime, received_at: datetime, now: datetime) -> str | None:
    """Why a reading's times cannot be true, or None. ``received_at`` is the gateway's clock
    when it took the reading, ``now`` the receiver's own clock: a gateway clock ahead of the
    receiver's, or a measurement after its own receipt, beyond FUTURE_ALLOWANCE, is refused,
    as is any time before TIME_FLOOR (an unset device clock the gateway could not correct)."""
    if received_at > now + FUTURE_ALLOWANCE:
        return f"received_at {iso(received_at)} is in the future (receiver's clock {iso(now)})"
    if measured_at > received_at + FUTURE_ALLOWANCE:
        return (f"measured_at {iso(measured_at)} is after its receipt at {iso(received_at)} "
                f"by more than {FUTURE_ALLOWANCE}")
    if min(measured_at, received_at) < TIME_FLOOR:
        return f"time before {iso(TIME_FLOOR)}: measured_at {iso(measured_at)}"
    return None


def now_utc() -> datetime:
    return datetime.now(UTC)


# Units accepted at the edge for each kind, with the factor to the canonical unit.
_TO_CANONICAL: Final[Mapping[tuple[Kind, str], float]] = {
    (Kind.GLUCOSE, "mmol/L"): MGDL_PER_MMOLL,
    (Kind.WEIGHT, "[lb_av]"): KG_PER_LB,
    (Kind.WEIGHT, "lb"): KG_PER_LB,
    (Kind.WEIGHT, "g"): 0.001,
    (Kind.BP_SYSTOLIC, "kPa"): MMHG_PER_KPA,
    (Kind.BP_DIASTOLIC, "kPa"): MMHG_PER_KPA,
    (Kind.BP_MEAN, "kPa"): MMHG_PER_KPA,
    (Kind.CREATININE, "mg/dL"): 88.42,
    (Kind.NT_PROBNP, "ng/L"): 1.0,
}
_UNIT_ALIASES: Final[Mapping[str, str]] = {"mmHg": "mm[Hg]", "bpm": "/min", "C": "Cel",
                                            "degC": "Cel", "INR": "{INR}"}


def to_canonical(kind: Kind, value: float | None, unit: str
                 ) -> tuple[float | None, str, float | None, str | None]:
    """(value, unit, original_value, original_unit) in the canonical unit of ``kind``.

    The original is kept only when a conversion happened. Raises ContractError for a unit
    that cannot be converted (never guesses).
    """
    unit = _UNIT_ALIASES.get(unit, unit)
    canonical = CANONICAL_UNIT[kind]
    if unit == canonical or kind is Kind.UNKNOWN:
        return value, unit, None, None
    if kind is Kind.BODY_TEMPERATURE and unit in ("[degF]", "degF", "F"):
        return (None if value is None else round((value - 32) * 5 / 9, 3)), canonical, value, unit
    factor = _TO_CANONICAL.get((kind, unit))
    if factor is None:
        raise ContractError(f"cannot convert {kind} from {unit!r} to {canonical!r}")
    return (None if value is None else value * factor), canonical, value, unit


# -- device assignments: cloud -> gateway ----------------------------------------------------

def devices_config_topic(gateway_id: str) -> str:
    """Where the cloud publishes a gateway's device list (retained, QoS 1); the broker ACL
    lets only that gateway read ``.../gateways/<id>/config/#`` and only services write it."""
    return f"{TOPIC_PREFIX}/gateways/{check_id(gateway_id, 'gateway')}/config/devices"


@dataclass(frozen=True, slots=True)
class DeviceAssignment:
    """What the cloud's registry says about one device paired to a gateway: its patient, or
    shared (attributed on the gateway by user index or patient reference), or neither."""

    device_id: str
    patient_id: str | None = None
    shared: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.device_id, "patient": self.patient_id, "shared": self.shared}

    @classmethod
    def from_json(cls, obj: Any) -> DeviceAssignment:
        if not isinstance(obj, dict):
            raise ContractError("a device must be a JSON object")
        patient = _opt_str(obj, "patient")
        shared = obj.get("shared", False)
        if not isinstance(shared, bool):
            raise ContractError(f"field 'shared' must be a boolean, got {shared!r}")
        if shared and patient is not None:
            raise ContractError("a device is either a patient's or shared, not both")
        return cls(check_id(_req_str(obj, "id"), "device"),
                   None if patient is None else check_id(patient, "patient"), shared)


@dataclass(frozen=True, slots=True)
class GatewayDevices:
    """The payload of ``devices_config_topic``: the full device list of one gateway, at a
    version that only grows (a gateway ignores a version older than the one it applied):
    ``{"v": 1, "gateway": ..., "version": N, "devices": [DeviceAssignment.to_json(), ...]}``."""

    gateway_id: str
    version: int
    devices: tuple[DeviceAssignment, ...] = ()

    def encode(self) -> bytes:
        body = {"v": SCHEMA_VERSION, "gateway": self.gateway_id, "version": self.version,
                "devices": [d.to_json() for d in self.devices]}
        return json.dumps(body, separators=(",", ":")).encode()


def _envelope(payload: bytes, topic_gateway: str, what: str, max_bytes: int = MAX_PAYLOAD_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The JSON object of a message on a gateway's topic, bounded before parsing, of this
    schema version and naming the gateway of its topic; raises ContractError."""
    body = loads_bounded(payload, max_bytes, max_depth)
    if not isinstance(body, dict) or type(body.get("v")) is not int \
            or body["v"] != SCHEMA_VERSION:
        raise ContractError(f"{what} payload must be an object with v = {SCHEMA_VERSION}")
    if body.get("gateway") != topic_gateway:
        raise ContractError(f"payload gateway {str(body.get('gateway'))[:40]!r} does not "
                            f"match {topic_gateway!r}")
    return body


def decode_gateway_devices(payload: bytes, topic_gateway: str) -> GatewayDevices:
    """Parse and validate a device list; raises ContractError on anything malformed."""
    body = _envelope(payload, topic_gateway, "devices")
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ContractError(f"field 'version' must be a non-negative integer, got {version!r}")
    raw = body.get("devices")
    if not isinstance(raw, list):
        raise ContractError("field 'devices' must be a list")
    devices = tuple(DeviceAssignment.from_json(d) for d in raw)
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        raise ContractError("a device is listed twice")
    return GatewayDevices(check_id(topic_gateway, "gateway"), version, devices)


# -- end-to-end acknowledgement: cloud -> gateway ---------------------------------------------

MAX_STORED_IDS: Final = MAX_READINGS_PER_BATCH  # reading ids in one ``stored`` message
MAX_STORED_BYTES: Final = 256 * 1024  # 5,000 ids of 35 bytes with the envelope fit


def stored_topic(gateway_id: str) -> str:
    """Where the cloud names the readings of a gateway that are now durable on its side
    (written to InfluxDB, or quarantined with their reason), QoS 1, never retained: the
    gateway deletes them from its outbox only then, not on the broker's PUBACK, so that no
    broker is trusted to keep data. The broker ACL lets only that gateway read it and only
    services write it. Payload: ``{"v": 1, "gateway": ..., "ids": [reading id, ...]}``."""
    return f"{TOPIC_PREFIX}/gateways/{check_id(gateway_id, 'gateway')}/stored"


def encode_stored(gateway_id: str, ids: Sequence[str]) -> bytes:
    """The payload of ``stored_topic``; at most ``MAX_STORED_IDS`` ids (split longer lists
    into several messages)."""
    if len(ids) > MAX_STORED_IDS:
        raise ContractError(f"{len(ids)} ids in one stored message, over {MAX_STORED_IDS}")
    body = {"v": SCHEMA_VERSION, "gateway": check_id(gateway_id, "gateway"), "ids": list(ids)}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_stored(payload: bytes, topic_gateway: str) -> tuple[str, ...]:
    """The reading ids of a ``stored`` message; raises ContractError on anything malformed
    (bounded before parsing: size, nesting, number of ids, form of each id)."""
    body = _envelope(payload, topic_gateway, "stored", MAX_STORED_BYTES, max_depth=2)
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise ContractError("field 'ids' must be a list")
    if len(ids) > MAX_STORED_IDS:
        raise ContractError(f"{len(ids)} ids in one stored message, over {MAX_STORED_IDS}")
    if not all(is_reading_id(i) for i in ids):
        raise ContractError("field 'ids' must hold reading ids (32 lowercase hex digits)")
    return tuple(ids)
