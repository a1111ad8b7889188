"""InfluxQL queries the cloud side needs (identifiers are validated ids: safe to quote)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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


class HistoryLoader:
    """The rule engine's warm-up from InfluxDB, one patient at a time.

    The engine asks kind by kind when it first meets a patient; one COUNT ... GROUP BY kind
    tells which kinds the patient has at all, so a new patient costs one query, not one per
    kind. The answer is kept for a few seconds only: just the span of one warm-up.
    """

    TTL_S = 5.0
    CACHE = 4096  # patients; more than one batch's worth of new ones
    PREFETCH_CHUNK = 100  # patients per query (keeps the InfluxQL short)

    def __init__(self, store: TimeSeriesStore, horizon_days: float = 400.0) -> None:
        self.store = store
        self.horizon = timedelta(days=horizon_days)
        self._kinds: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()

    def prefetch(self, firsts: Mapping[str, datetime]) -> None:
        """Which kinds each patient had before ``firsts[patient]`` (its first reading in the
        batch being evaluated), in one query per hundred patients: a batch full of patients
        met for the first time costs one round trip, not one each. ``FIRST`` gives each
        (patient, kind) its oldest point, so the batch's own readings, already stored, are
        told apart from history."""
        patients = sorted(firsts)
        for i in range(0, len(patients), self.PREFETCH_CHUNK):
            chunk = patients[i:i + self.PREFETCH_CHUNK]
            ends = [firsts[p] for p in chunk]
            who = " OR ".join(f"patient = '{check_id(p, 'patient')}'" for p in chunk)
            q = (f"SELECT FIRST(id) FROM {MEASUREMENT} WHERE ({who}) "
                 f"AND time >= {ns(min(ends) - self.horizon)} AND time < {ns(max(ends))} "
                 f"GROUP BY patient, kind")
            found: dict[str, set[str]] = {p: set() for p in chunk}
            for series in self.store.query(q):
                tags = series.get("tags", {})
                patient, kind = str(tags.get("patient")), str(tags.get("kind"))
                rows = _rows([series])
                if patient in found and rows and isinstance(rows[0].get("time"), int) \
                        and rows[0]["time"] < ns(firsts[patient]):
                    found[patient].add(kind)
            for patient in chunk:
                self._remember(patient, found[patient])

    def __call__(self, patient: str, kind: str, start: datetime, end: datetime
                 ) -> list[StoredValue]:
        if str(kind) not in self._present(patient, end):
            return []
        return history_readings(self.store, patient, str(kind), start, end)

    def _present(self, patient: str, end: datetime) -> set[str]:
        cached = self._kinds.get(patient)
        if cached is not None and time.monotonic() - cached[0] < self.TTL_S:
            return cached[1]
        q = (f"SELECT COUNT(id) FROM {MEASUREMENT} WHERE patient = "
             f"'{check_id(patient, 'patient')}' AND time >= {ns(end - self.horizon)} "
             f"AND time < {ns(end)} GROUP BY kind")
        kinds = {str(s.get("tags", {}).get("kind")) for s in self.store.query(q)}
        self._remember(patient, kinds)
        return kinds

    def _remember(self, patient: str, kinds: set[str]) -> None:
        self._kinds[patient] = (time.monotonic(), kinds)
        self._kinds.move_to_end(patient)
        if len(self._kinds) > self.CACHE:
            self._kinds.popitem(last=False)


def stored_ids(store: TimeSeriesStore) -> list[str]:
    """Every reading id stored (one per point): the demo's and tests' ground truth."""
    return [str(r["id"]) for r in _rows(store.query(f"SELECT id FROM {MEASUREMENT}"))]


def point_count(store: TimeSeriesStore) -> int:
    rows = _rows(store.query(f"SELECT COUNT(id) FROM {MEASUREMENT}"))
    return int(rows[0]["count"]) if rows else 0
