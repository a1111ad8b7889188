"""InfluxQL queries the cloud side needs (identifiers are validated ids: safe to quote)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
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


@dataclass(slots=True)
class _Fetched:
    """Readings of one kind fetched for a group of patients at once, over [start, end)."""

    start: datetime
    end: datetime
    rows: dict[str, list[StoredValue]]  # patient -> readings in [start, end), time order


class HistoryLoader:
    """The rule engine's warm-up from InfluxDB, in a bounded number of queries per batch.

    ``prefetch`` (the engine's ``prepare``, before a batch is evaluated) learns which kinds
    each patient met for the first time had before the batch, a few hundred patients per
    query; its answers are kept for that batch whatever its size, until the next prefetch,
    so that a patient with no history costs nothing more. When the engine then asks a
    prefetched patient's readings of a kind, they are fetched for every prefetched patient
    having that kind, up to ``GROUP`` per query, with the same look-back: warming up a batch
    costs a few queries per kind, not one per patient. Patients the engine asks about
    without a prefetch cost one query saying which kinds they have (kept ``TTL_S`` seconds)
    and one per kind they have.
    """

    TTL_S = 5.0
    CACHE = 4096  # patients asked about without a prefetch, remembered TTL_S seconds
    PREFETCH_CHUNK = 500  # patients per "which kinds" query (keeps the InfluxQL bounded)
    GROUP = 200  # patients per readings query (keeps an answer's size bounded)
    SLACK = timedelta(days=1)  # a group's readings end this long after its first readings

    def __init__(self, store: TimeSeriesStore, horizon_days: float = 400.0) -> None:
        self.store = store
        self.horizon = timedelta(days=horizon_days)
        self._kinds: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        # the last prefetch: each patient's first reading in its batch and kinds had before
        self._firsts: dict[str, datetime] = {}
        self._batch: dict[str, set[str]] = {}
        self._fetched: dict[tuple[str, str], _Fetched] = {}  # (patient, kind) -> its group's
        self._groups: dict[str, dict[str, list[str]]] = {}  # kind -> patient -> its group
        self._asked: set[tuple[str, str]] = set()  # (patient, kind) served since the prefetch

    def prefetch(self, firsts: Mapping[str, datetime]) -> None:
        """Which kinds each patient had before ``firsts[patient]`` (its first reading in the
        batch being evaluated), in one query per ``PREFETCH_CHUNK`` patients. ``FIRST`` gives
        each (patient, kind) its oldest point, so the batch's own readings, already stored,
        are told apart from history. Replaces what the previous prefetch kept."""
        self._firsts, self._batch = dict(firsts), {}
        self._fetched, self._groups, self._asked = {}, {}, set()
        patients = sorted(firsts)
        for i in range(0, len(patients), self.PREFETCH_CHUNK):
            chunk = patients[i:i + self.PREFETCH_CHUNK]
            ends = [firsts[p] for p in chunk]
            q = (f"SELECT FIRST(id) FROM {MEASUREMENT} WHERE ({_any_patient(chunk)}) "
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
            self._batch.update(found)

    def __call__(self, patient: str, kind: str, start: datetime, end: datetime
                 ) -> list[StoredValue]:
        kind = str(kind)
        kinds = self._batch.get(patient)
        if kinds is None:
            kinds = self._present(patient, end)
        if kind not in kinds:
            return []
        key = (patient, kind)
        fetched = self._fetched.pop(key, None)
        if fetched is None and patient in self._batch and key not in self._asked:
            self._fetch_group(patient, kind, start, end)
            fetched = self._fetched.pop(key, None)
        if patient in self._batch:
            self._asked.add(key)  # asked again (another look-back): a query of its own
        if fetched is not None:
            rows = fetched.rows.pop(patient, [])  # memory goes as the warm-ups proceed
            if fetched.start <= start and end <= fetched.end:
                return [r for r in rows if start <= r.measured_at < end]
        return history_readings(self.store, patient, kind, start, end)

    def _fetch_group(self, patient: str, kind: str, start: datetime, end: datetime) -> None:
        """The readings of ``kind`` of ``patient``'s group: the prefetched patients having
        that kind, ``GROUP`` at a time in the order of their first readings, each with the
        look-back asked for ``patient`` before its first reading of the batch."""
        groups = self._groups.get(kind)
        if groups is None:
            having = sorted((p for p, kinds in self._batch.items() if kind in kinds),
                            key=lambda p: self._firsts[p])
            groups = self._groups[kind] = {}
            for i in range(0, len(having), self.GROUP):
                members = having[i:i + self.GROUP]
                groups.update(dict.fromkeys(members, members))
        group = groups.get(patient, [patient])
        span = end - start
        firsts = [self._firsts.get(p, end) for p in group]
        g_start = min(min(firsts) - span, start)
        g_end = max(max(firsts) + self.SLACK, end)
        q = (f"SELECT value, id FROM {MEASUREMENT} WHERE ({_any_patient(group)}) "
             f"AND kind = '{check_id(kind, 'kind')}' AND time >= {ns(g_start)} "
             f"AND time < {ns(g_end)} GROUP BY patient")
        fetched = _Fetched(g_start, g_end, {})
        for series in self.store.query(q):
            who = str(series.get("tags", {}).get("patient"))
            fetched.rows[who] = [
                StoredValue(str(r["id"]), None if r.get("value") is None else float(r["value"]),
                            from_ns(int(r["time"]))) for r in _rows([series])]
        for p in group:
            self._fetched[(p, kind)] = fetched

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


def _any_patient(patients: Sequence[str]) -> str:
    return " OR ".join(f"patient = '{check_id(p, 'patient')}'" for p in patients)


def stored_ids(store: TimeSeriesStore) -> list[str]:
    """Every reading id stored (one per point): the demo's and tests' ground truth."""
    return [str(r["id"]) for r in _rows(store.query(f"SELECT id FROM {MEASUREMENT}"))]


def point_count(store: TimeSeriesStore) -> int:
    rows = _rows(store.query(f"SELECT COUNT(id) FROM {MEASUREMENT}"))
    return int(rows[0]["count"]) if rows else 0
