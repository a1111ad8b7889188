"""The rule engine's warm-up from the real InfluxDB: a batch of patients met for the first
time costs a few queries whatever its size, and what each patient had before its batch is
still found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting.engine import Engine
from cloud_api.app import CloudSettings, build
from cloud_api.influx import InfluxV1, TimeSeriesStore
from cloud_api.points import to_line
from cloud_api.queries import HistoryLoader
from cloud_api.stages.work import Work
from tests.alerting.alerting_kit import reading
from tests.dbkit import database_url
from vigie.contract import Kind
from vigie.services import Services

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


class CountingInflux(InfluxV1):
    """The real store, counting the queries it is asked."""

    queries: list[str]

    def query(self, influxql: str) -> list[dict[str, object]]:
        self.queries.append(influxql)
        return super().query(influxql)


def test_a_batch_of_new_patients_warms_up_in_one_query(services: Services) -> None:
    store = CountingInflux(services.influx.url, "warmup")
    store.ensure_database()
    store.queries = []
    old_weight = reading(Kind.WEIGHT, 80.0, NOW - timedelta(days=3), pid="p-old")
    batch = [reading(Kind.GLUCOSE, 48.0 + i, NOW, pid=f"p-new-{i}") for i in range(150)]
    batch += [reading(Kind.WEIGHT, 82.5, NOW, pid="p-old"),
              reading(Kind.GLUCOSE, 120.0, NOW - timedelta(minutes=5), pid="p-new-0")]
    store.write([to_line(r, "site-1") for r in [old_weight, *batch]])  # stored before rules

    engine = Engine(history_loader=HistoryLoader(store))
    engine.prepare(batch)
    prefetches = len(store.queries)
    assert prefetches == 1  # 151 patients: one query per five hundred
    signals = [s for r in batch for s in engine.evaluate(r)]
    # Only p-old had history (its weight three days ago): one more query, for its weights.
    assert len(store.queries) == prefetches + 1 and "p-old" in store.queries[-1]
    gains = [s for s in signals if s.rule == "hf.weight_gain_3d" and s.patient_id == "p-old"]
    assert gains, "+2.5 kg against the weight of three days ago: the history was loaded"
    lows = sum(48.0 + i < 70 for i in range(150))  # level 1 and 2 hypoglycaemias
    assert sum(s.rule == "dm.hypoglycaemia" for s in signals) == lows
    store.close()


def test_a_batch_bigger_than_any_cache_warms_up_in_a_few_queries(services: Services) -> None:
    """5,000 patients met at once (the loader once kept 4,096 answers, then asked each of the
    others again, one query per patient); 450 of them have glucose history, 50 of them
    weights too. The batch costs one query per 500 patients to learn who has what and one
    per 200 patients having a kind to load it, and every patient's history is used."""
    store = CountingInflux(services.influx.url, "warmup_big")
    store.ensure_database()
    store.queries = []
    history = [reading(Kind.GLUCOSE, 110.0, NOW - timedelta(hours=2), pid=f"p-{i}")
               for i in range(0, 4500, 10)]
    history += [reading(Kind.WEIGHT, 80.0, NOW - timedelta(days=3), pid=f"p-{i}")
                for i in range(0, 4500, 90)]
    batch = [reading(Kind.GLUCOSE, 120.0, NOW, pid=f"p-{i}") for i in range(5000)]
    batch += [reading(Kind.WEIGHT, 82.5, NOW, pid=f"p-{i}") for i in range(0, 4500, 90)]
    store.write([to_line(r, "site-1") for r in [*history, *batch]])

    engine = Engine(history_loader=HistoryLoader(store))
    engine.prepare(batch)
    assert len(store.queries) == 10  # 5,000 patients, 500 per query
    signals = [s for r in batch for s in engine.evaluate(r)]
    loads = store.queries[10:]
    # glucose of 450 patients: 3 queries of at most 200; weights of 50: one
    assert len(loads) == 4, loads
    assert sum("kind = 'glucose'" in q for q in loads) == 3
    gains = {s.patient_id for s in signals if s.rule == "hf.weight_gain_3d"}
    assert gains == {f"p-{i}" for i in range(0, 4500, 90)}, "weights of 3 days ago loaded"
    store.close()


def test_a_patient_asked_with_a_longer_look_back_gets_its_own_query(
        services: Services) -> None:
    """The group's readings cover the look-back first asked; a patient asked for more (its
    own settings) is read on its own, never served a truncated history."""
    store = CountingInflux(services.influx.url, "warmup_span")
    store.ensure_database()
    old = [reading(Kind.WEIGHT, 80.0 + i, NOW - timedelta(days=9), pid=f"p-{i}")
           for i in range(3)]
    batch = [reading(Kind.WEIGHT, 81.0, NOW, pid=f"p-{i}") for i in range(3)]
    store.write([to_line(r, "site-1") for r in [*old, *batch]])
    store.queries = []
    load = HistoryLoader(store)
    load.prefetch({r.patient_id or "": r.measured_at for r in batch})
    week = load("p-0", Kind.WEIGHT, NOW - timedelta(days=7), NOW)
    assert week == [] and len(store.queries) == 2  # prefetch, then the group's readings
    fortnight = load("p-1", Kind.WEIGHT, NOW - timedelta(days=14), NOW)
    assert [v.value for v in fortnight] == [81.0] and len(store.queries) == 3
    store.close()


def _influx_queries(store: TimeSeriesStore) -> int:
    """Queries InfluxDB itself has served so far (its own httpd statistics)."""
    total = 0
    for series in store.query("SHOW STATS FOR 'httpd'"):
        columns = list(series["columns"])
        total += int(series["values"][0][columns.index("queryReq")])
    return total


@pytest.mark.parametrize("role", ["all", "shard"])
def test_the_cloud_gives_its_engine_the_batched_loader(
        services: Services, tmp_path: Path, role: str) -> None:
    """A batch of new patients through the worker of ``vigie cloud run`` (single process and
    shard worker) warms up in one query per five hundred, counted by InfluxDB itself. Before, the
    cloud wrapped the loader in a function without ``prefetch``, and the shard worker never
    asked for a prefetch: one query per patient."""
    ctx, ingest = build(CloudSettings(mqtt=services.mqtt, influx_url=services.influx.url,
                                      influx_db="warmup_app", role=role,
                                      db_url=database_url(tmp_path),
                                      secret_file=str(tmp_path / "api-secret")))
    assert ingest is not None and isinstance(ingest.evaluator, Engine)
    batch = [reading(Kind.GLUCOSE, 110.0, NOW, pid=f"p-{role}-{i}") for i in range(150)]
    ctx.store.write([to_line(r, "site-1") for r in batch])
    before = _influx_queries(ctx.store)
    ingest._record(Work(readings=[(r, "site-1") for r in batch]))  # what a batch goes through
    # one prefetch (150 patients, five hundred per query) and the second SHOW STATS
    assert _influx_queries(ctx.store) - before == 2
    assert ingest.stats.readings_stored == 150
    ctx.store.close()
    ctx.sessions.kw["bind"].dispose()
    ingest.sessions.kw["bind"].dispose()  # a scale-out worker's engine is its own
