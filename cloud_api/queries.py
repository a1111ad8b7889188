"""InfluxQL queries the cloud side needs (identifiers are validated ids: safe to quote)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloud_api.influx import TimeSeriesStore
from cloud_api.points import MEASUREMENT, from_ns, ns
from vigie.contract import check_id, iso


def _rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in series:
        cols = s["columns"]
        out.extend(dict(zip(cols, values, strict=True)) for values in s.get("values", []))
    return out


def observations(store: TimeSeriesStore, patient: str, kind: str | None, start: datetime,
                 end: datetime, limit: int = 10_000, site: str | None = None
                 ) -> list[dict[str, Any]]:
    """A patient's readings; ``site`` given: only those its gateways' site sent (tenancy)."""
    where = [f"patient = '{check_id(patient, 'patient')}'",
             f"time >= {ns(start)}", f"time < {ns(end)}"]
    if kind:
        where.append(f"kind = '{check_id(kind, 'kind')}'")
    if site:
        where.append(f"site = '{check_id(site, 'site')}'")
    q = (f"SELECT value, unit, id, device, original_value, original_unit, time_trusted "
         f"FROM {MEASUREMENT} WHERE {' AND '.join(where)} GROUP BY kind "
         f"ORDER BY time LIMIT {int(limit)}")
    out: list[dict[str, Any]] = []
    for s in store.query(q):
        k = s.get("tags", {}).get("kind")
        for row in _rows([s]):
            row["kind"] = k
            row["time"] = iso(from_ns(int(row["time"])))
            out.append(row)
    out.sort(key=lambda r: str(r["time"]))
    return out


def history(store: TimeSeriesStore, patient: str, kind: str, start: datetime, end: datetime
            ) -> list[tuple[datetime, float]]:
    """(measured time, value) of a patient's readings of one kind: rule state warm-up."""
    q = (f"SELECT value FROM {MEASUREMENT} WHERE patient = '{check_id(patient, 'patient')}' "
         f"AND kind = '{check_id(kind, 'kind')}' AND time >= {ns(start)} AND time < {ns(end)}")
    return [(from_ns(int(r["time"])), float(r["value"]))
            for r in _rows(store.query(q)) if r.get("value") is not None]


@dataclass(frozen=True, slots=True)
class StoredValue:
    """One stored reading as the rule engine's warm-up needs it."""

    id: str
    value: float | None
    measured_at: datetime


def history_readings(store: TimeSeriesStore, patient: str, kind: str, start: datetime,
                     end: datetime) -> list[StoredValue]:
    """A patient's stored readings of one kind in [start, end): rule engine warm-up."""
    q = (f"SELECT value, id FROM {MEASUREMENT} WHERE patient = '{check_id(patient, 'patient')}' "
         f"AND kind = '{check_id(kind, 'kind')}' AND time >= {ns(start)} AND time < {ns(end)}")
    return [StoredValue(str(r["id"]), None if r.get("value") is None else float(r["value"]),
                        from_ns(int(r["time"]))) for r in _rows(store.query(q))]


def stored_ids(store: TimeSeriesStore) -> list[str]:
    """Every reading id stored (one per point): the demo's and tests' ground truth."""
    return [str(r["id"]) for r in _rows(store.query(f"SELECT id FROM {MEASUREMENT}"))]


def point_count(store: TimeSeriesStore) -> int:
    rows = _rows(store.query(f"SELECT COUNT(id) FROM {MEASUREMENT}"))
    return int(rows[0]["count"]) if rows else 0
