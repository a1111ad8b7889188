"""The InfluxDB write of a batch, with the points the store refuses found by bisection.

One refused point (a time outside what InfluxDB can hold, a field type conflict) must not
cost one request per reading for everyone else: the batch is halved until each refused point
stands alone, about ``2 log2(n)`` requests for one bad point among n. Rewriting the halves
that went through is harmless, writes are idempotent (``cloud_api.points``). The store being
away (``StoreUnavailable``) is not decided here: the caller retries the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud_api.errors import StoreRejected
from cloud_api.influx import TimeSeriesStore
from cloud_api.points import to_line
from cloud_api.stages.work import Sited

Refused = tuple[Sited, str]  # a reading the store refused, and its words


def write_isolating(store: TimeSeriesStore, readings: Sequence[Sited],
                    ingested_ns: int) -> tuple[list[Sited], list[Refused]]:
    """Write ``readings``; returns (stored, refused). Raises StoreUnavailable."""
    lines = [to_line(r, site, ingested_ns) for r, site in readings]
    kept: list[Sited] = []
    refused: list[Refused] = []
    _write(store, list(readings), lines, kept, refused)
    return kept, refused


def _write(store: TimeSeriesStore, items: list[Sited], lines: list[str], kept: list[Sited],
           refused: list[Refused]) -> None:
    if not items:
        return
    try:
        store.write(lines)
    except StoreRejected as exc:
        if len(items) == 1:
            refused.append((items[0], str(exc)))
            return
        half = len(items) // 2
        _write(store, items[:half], lines[:half], kept, refused)
        _write(store, items[half:], lines[half:], kept, refused)
        return
    kept.extend(items)
