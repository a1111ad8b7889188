"""InfluxQL for the clinicians' pages: downsampled trends, daily summaries, attribution.

Long ranges are downsampled in InfluxDB (``GROUP BY time(...)`` with mean, min and max), so a
90-day chart of 5-minute glucose moves a few hundred rows, not 26,000. Identifiers are
validated ids before they are quoted; values are numbers the code formats itself.

Readings nobody could attribute at the edge are stored under the patient tag ``_unattributed``
(``cloud_api.points.UNATTRIBUTED``). Assigning one writes the same point again under the
patient's tag, then deletes the unattributed point: a crash in between leaves the reading
twice (visible in the queue, assignable again, idempotent), never nowhere.

Daily summaries (time in range, the weight baseline) are per *local* day of the deployment's
zone (``vigie cloud run --day-zone``, default Europe/Paris): InfluxDB groups with
``GROUP BY time(1d) ... tz('Zone')``, whose buckets start at local midnight (23 or 25 hours on
DST days), and days are walked with date arithmetic, never +24 h on UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud_api.influx import TimeSeriesStore
from cloud_api.points import MEASUREMENT, UNATTRIBUTED, from_ns, ns
from vigie.contract import check_id, iso, now_utc

# Nice bucket widths, smallest first; the first giving at most MAX_BUCKETS buckets is used.
INTERVALS: Final = (timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30),
                    timedelta(hours=1), timedelta(hours=3), timedelta(hours=6),
                    timedelta(hours=12), timedelta(days=1), timedelta(days=7))
MAX_BUCKETS: Final = 400
RAW_UP_TO: Final = timedelta(hours=36)  # shorter ranges are drawn point by point
TAGS: Final = ("patient", "kind", "device", "gateway", "site")
# Field types of the points ``cloud_api.points.to_line`` writes. InfluxDB's JSON drops the
# ``.0`` of a float, so a rewrite cannot infer types from values (a field keeps its type).
_FLOATS: Final = frozenset({"value", "original_value"})
_INTS: Final = frozenset({"seq", "ingested_ns"})
_BOOLS: Final = frozenset({"time_trusted"})
DAY_ZONE: Final = "Europe/Paris"  # default zone of the daily summaries
_ZONE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")


def day_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. Europe/Paris, Indian/Reunion); ValueError if unknown."""
    hint = "an IANA time zone such as Europe/Paris, Indian/Reunion or America/Cayenne"
    if not _ZONE_NAME.fullmatch(name):
        raise ValueError(f"unknown time zone {name!r}: expected {hint}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}: expected {hint}") from exc


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The instant (UTC) local ``day`` begins in ``zone``."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_day(ts: datetime, zone: ZoneInfo) -> date:
    return ts.astimezone(zone).date()


def _tz(zone: ZoneInfo) -> str:
    if not _ZONE_NAME.fullmatch(zone.key):  # the name is quoted into InfluxQL
        raise ValueError(f"unusable time zone {zone.key!r}")
    return f"tz('{zone.key}')"


def choose_interval(start: datetime, end: datetime) -> timedelta | None:
    """Bucket width for a chart of ``[start, end)``; None: short enough for raw points."""
    span = end - start
    if span <= RAW_UP_TO:
        return None
    for width in INTERVALS:
        if span / width <= MAX_BUCKETS:
            return width
    return INTERVALS[-1]


def _duration(width: timedelta) -> str:
    seconds = int(width.total_seconds())
    return f"{seconds // 60}m" if seconds % 3600 else f"{seconds // 3600}h"


def site_condition(sites: Iterable[str] | None) -> str:
    """InfluxQL condition on the ``site`` tag; None: every site (no condition)."""
    if sites is None:
        return "true"
    names = [f"site = '{check_id(s, 'site')}'" for s in sorted(sites)]
    return f"({' OR '.join(names)})" if names else "false"


def _where(patient: str, start: datetime, end: datetime, site: str | None,
           kinds: Iterable[str] = ()) -> str:
    parts = [f"patient = '{check_id(patient, 'patient')}'", f"time >= {ns(start)}",
             f"time < {ns(end)}"]
    kind_list = [f"kind = '{check_id(k, 'kind')}'" for k in kinds]
    if kind_list:
        parts.append(f"({' OR '.join(kind_list)})")
    if site:
        parts.append(f"site = '{check_id(site, 'site')}'")
    return " AND ".join(parts)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _rows(series: Iterable[dict[str, Any]]) -> Iterable[tuple[dict[str, str], dict[str, Any]]]:
    for s in series:
        cols = s.get("columns", [])
        for values in s.get("values", []):
            yield s.get("tags") or {}, dict(zip(cols, values, strict=False))


def _time(row: Mapping[str, Any]) -> str | None:
    t = row.get("time")
    return iso(from_ns(t)) if isinstance(t, int) else None


@dataclass(frozen=True, slots=True)
class Bucket:
    """One chart point: a raw reading (n = 1, min = max = mean) or a bucket's summary."""

    t: str
    mean: float
    min: float
    max: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "mean": self.mean, "min": self.min, "max": self.max, "n": self.n}


def trend(store: TimeSeriesStore, patient: str, kinds: Iterable[str], start: datetime,
          end: datetime, site: str | None, width: timedelta | None, limit: int = 20_000
          ) -> dict[str, list[Bucket]]:
    """Per kind, raw points (``width`` None) or mean/min/max per bucket, oldest first."""
    kinds = list(kinds)
    where = _where(patient, start, end, site, kinds)
    if width is None:
        q = (f"SELECT value FROM {MEASUREMENT} WHERE {where} GROUP BY kind ORDER BY time "
             f"LIMIT {int(limit)}")
    else:
        q = (f"SELECT MEAN(value) AS mean, MIN(value) AS min, MAX(value) AS max, "
             f"COUNT(value) AS n FROM {MEASUREMENT} WHERE {where} "
             f"GROUP BY time({_duration(width)}), kind fill(none)")
    out: dict[str, list[Bucket]] = {k: [] for k in kinds}
    for tags, row in _rows(store.query(q)):
        b = _bucket(row) if width is not None else _raw(row)
        kind = tags.get("kind")
        if b is not None and kind in out:
            out[kind].append(b)
    return out


def _raw(row: Mapping[str, Any]) -> Bucket | None:
    t, v = _time(row), _num(row.get("value"))
    return None if t is None or v is None else Bucket(t, v, v, v, 1)


def _bucket(row: Mapping[str, Any]) -> Bucket | None:
    t = _time(row)
    mean, lo, hi, n = (_num(row.get(c)) for c in ("mean", "min", "max", "n"))
    if t is None or mean is None or lo is None or hi is None or not n:
        return None
    return Bucket(t, mean, lo, hi, int(n))


def daily(store: TimeSeriesStore, patient: str, kind: str, start: datetime, end: datetime,
          site: str | None, condition: str = "", *, zone: ZoneInfo
          ) -> dict[str, tuple[float, int]]:
    """Local day in ``zone`` (ISO date) -> (sum, count) of a kind's values, optionally under
    a condition. A bucket's time is the instant its local day starts."""
    where = _where(patient, start, end, site, [kind]) + (f" AND {condition}" if condition else "")
    q = (f"SELECT SUM(value) AS s, COUNT(value) AS n FROM {MEASUREMENT} WHERE {where} "
         f"GROUP BY time(1d) fill(none) {_tz(zone)}")
    out: dict[str, tuple[float, int]] = {}
    for _, row in _rows(store.query(q)):
        t, s, n = row.get("time"), _num(row.get("s")), _num(row.get("n"))
        if isinstance(t, int) and s is not None and n:
            out[local_day(from_ns(t), zone).isoformat()] = (s, int(n))
    return out


def baseline_band(days: Mapping[str, tuple[float, int]], start: datetime, end: datetime,
                  window_days: int, half_width: float, min_samples: int = 3, *,
                  zone: ZoneInfo) -> list[dict[str, Any]]:
    """Per local day of [start, end): mean of the readings of the ``window_days`` before,
    +- band. ``days`` is what ``daily`` returns for the same ``zone``.

    The hf.weight_baseline rule compares a weighing with the mean of the previous 28 days;
    the band drawn is that mean plus and minus the rule's threshold. Each point has ``day``
    (local ISO date) and ``t`` (the instant that day starts, UTC).
    """
    out: list[dict[str, Any]] = []
    day = local_day(start, zone)
    while (begins := day_start(day, zone)) < end:
        total = count = 0.0
        for back in range(1, window_days + 1):
            s, n = days.get((day - timedelta(days=back)).isoformat(), (0.0, 0))
            total, count = total + s, count + n
        if count >= min_samples:
            mean = total / count
            out.append({"t": iso(begins), "day": day.isoformat(), "mean": round(mean, 3),
                        "low": round(mean - half_width, 3), "high": round(mean + half_width, 3)})
        day += timedelta(days=1)
    return out


def time_in_range(store: TimeSeriesStore, patient: str, start: datetime, end: datetime,
                  site: str | None, low: float, high: float, *, zone: ZoneInfo
                  ) -> list[dict[str, Any]]:
    """Per local day in ``zone`` (``day``: ISO date): glucose readings below, within and
    above [low, high] (Battelino 2019)."""
    total = daily(store, patient, "glucose", start, end, site, zone=zone)
    below = daily(store, patient, "glucose", start, end, site, f"value < {float(low)!r}",
                  zone=zone)
    above = daily(store, patient, "glucose", start, end, site, f"value > {float(high)!r}",
                  zone=zone)
    out = []
    for day in sorted(total):
        n = total[day][1]
        b, a = below.get(day, (0.0, 0))[1], above.get(day, (0.0, 0))[1]
        out.append({"day": day, "n": n, "below": b, "in_range": max(n - b - a, 0), "above": a})
    return out


# --- readings to attribute -------------------------------------------------------------

def unattributed(store: TimeSeriesStore, sites: frozenset[str] | None, limit: int = 500,
                 reading_id: str | None = None) -> list[dict[str, Any]]:
    """Unattributed readings of ``sites`` (None: every site), newest first."""
    where = [f"patient = '{UNATTRIBUTED}'", site_condition(sites)]
    if reading_id is not None:
        where.append(f"id = '{check_id(reading_id, 'reading')}'")
    q = (f"SELECT * FROM {MEASUREMENT} WHERE {' AND '.join(where)} "
         f"ORDER BY time DESC LIMIT {int(limit)}")
    out = []
    for tags, row in _rows(store.query(q)):
        merged = {**tags, **row}
        if isinstance(merged.get("time"), int) and merged.get("patient", UNATTRIBUTED) == \
                UNATTRIBUTED and (sites is None or merged.get("site") in sites):
            out.append(merged)
    return out


def _field(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name in _FLOATS:
        return f"{name}={float(value)!r}"
    if name in _INTS:
        return f"{name}={int(value)}i"
    if name in _BOOLS or isinstance(value, bool):
        return f"{name}={'true' if value else 'false'}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{text}"'


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def reattributed_line(row: Mapping[str, Any], patient: str, at: datetime | None = None) -> str:
    """The line protocol of a stored unattributed point, under ``patient``'s tag."""
    tags = {k: str(row[k]) for k in TAGS if row.get(k)}
    tags["patient"] = check_id(patient, "patient")
    fields = [f for name, value in sorted(row.items())
              if name not in TAGS and name != "time" and (f := _field(name, value))]
    fields.append(_field("attributed_at", iso(at or now_utc())) or "")
    tag_text = ",".join(f"{k}={_tag(v)}" for k, v in sorted(tags.items()))
    return f"{MEASUREMENT},{tag_text} {','.join(fields)} {int(row['time'])}"


def delete_unattributed(store: TimeSeriesStore, row: Mapping[str, Any]) -> None:
    """Delete one unattributed point: its series (every tag) at its exact timestamp."""
    conds = [f"patient = '{UNATTRIBUTED}'"]
    conds += [f"{k} = '{check_id(str(row[k]), k)}'" for k in TAGS[1:] if row.get(k)]
    t = int(row["time"])
    store.query(f"DELETE FROM {MEASUREMENT} WHERE {' AND '.join(conds)} "
                f"AND time >= {t} AND time <= {t}")
