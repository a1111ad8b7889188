from __future__ import annotations

from datetime import UTC, datetime

from cloud_api.points import from_ns, ns, to_line
from vigie.contract import Kind, Reading

T = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def test_line_protocol_escapes_and_is_deterministic_apart_from_ingest_time() -> None:
    r = Reading(id="a" * 32, gateway_id="gw-1", device_id="scale:1", patient_id=None,
                stream_seq=4, kind=Kind.WEIGHT, value=81.25, unit="kg", measured_at=T,
                received_at=T, device_time='2026-03-04T06:06:07 "x"', clock_offset_s=0.0,
                time_zone=None, time_trusted=True, original_value=179.1,
                original_unit="[lb_av]", flags=("a b",))
    line = to_line(r, "site 1", ingested_ns=5)
    assert line.startswith("observation,patient=_unattributed,kind=weight,device=scale:1,"
                           "gateway=gw-1,site=site\\ 1 value=81.25,")
    assert 'device_time="2026-03-04T06:06:07 \\"x\\""' in line
    assert line.endswith(f" {ns(T)}") and "seq=4i" in line and "ingested_ns=5i" in line
    assert to_line(r, "site 1", ingested_ns=5) == line


def test_nanoseconds_are_exact() -> None:
    assert ns(T) % 1000 == 0 and from_ns(ns(T)) == T
    assert ns(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000_000


def test_history_loader_asks_once_which_kinds_a_patient_has() -> None:
    from typing import Any

    from cloud_api.queries import HistoryLoader

    class Store:
        flavour = "test"

        def __init__(self) -> None:
            self.queries: list[str] = []

        def query(self, q: str) -> list[dict[str, Any]]:
            self.queries.append(q)
            if "COUNT" in q:
                return [{"name": "observation", "tags": {"kind": "weight"},
                         "columns": ["time", "count"], "values": [[0, 3]]}]
            return [{"name": "observation", "columns": ["time", "value", "id"],
                     "values": [[ns(T), 80.5, "a" * 32]]}]

    store = Store()
    load = HistoryLoader(store)  # type: ignore[arg-type]
    assert load("p-1", "glucose", T, T) == []
    weights = load("p-1", "weight", T, T)
    assert [(w.value, w.measured_at) for w in weights] == [(80.5, T)]
    assert sum("COUNT" in q for q in store.queries) == 1 and len(store.queries) == 2
