"""Readings as InfluxDB line protocol (sans-I/O).

Measurement ``observation``; tags patient, kind, device, gateway, site; timestamp = measured
time in nanoseconds. A reading written twice lands on the same series and timestamp, so it is
one point: writes are idempotent.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from vigie.contract import Reading

MEASUREMENT = "observation"
UNATTRIBUTED = "_unattributed"


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _str_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(ts: datetime) -> int:
    """Exact nanoseconds since the epoch (integer arithmetic: no float rounding)."""
    return (ts - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value // 1000)


def to_line(reading: Reading, site: str | None, ingested_ns: int | None = None) -> str:
    tags = [("patient", reading.patient_id or UNATTRIBUTED), ("kind", str(reading.kind)),
            ("device", reading.device_id), ("gateway", reading.gateway_id)]
    if site:
        tags.append(("site", site))
    fields = [f"id={_str_field(reading.id)}", f"seq={reading.stream_seq}i",
              f"received_at={_str_field(reading.received_at.isoformat())}",
              f"time_trusted={'true' if reading.time_trusted else 'false'}",
              f"ingested_ns={ingested_ns if ingested_ns is not None else time.time_ns()}i"]
    if reading.value is not None:
        fields.insert(0, f"value={float(reading.value)!r}")
    if reading.original_value is not None:
        fields.append(f"original_value={float(reading.original_value)!r}")
    if reading.original_unit:
        fields.append(f"original_unit={_str_field(reading.original_unit)}")
    if reading.unit:
        fields.append(f"unit={_str_field(reading.unit)}")
    if reading.device_time:
        fields.append(f"device_time={_str_field(reading.device_time)}")
    if reading.flags:
        fields.append(f"flags={_str_field(json.dumps(list(reading.flags)))}")
    tag_text = ",".join(f"{k}={_tag(v)}" for k, v in tags)
    return f"{MEASUREMENT},{tag_text} {','.join(fields)} {ns(reading.measured_at)}"
