"""The authorise stage: MQTT content checked against the registry, never believed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db import CareSite, Gateway, Patient, make_engine, make_sessions
from cloud_api.stages.authorise import Registry, authorise
from cloud_api.stages.refusal import code_of
from cloud_api.stages.work import Work
from cloud_api.tenancy import register_patients
from tests.alerting.alerting_kit import reading
from tests.dbkit import database_url
from vigie.contract import EdgeAlarm, Kind

T = datetime(2026, 11, 1, 10, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url(tmp_path))
    made = make_sessions(engine)
    with made.begin() as s:
        s.add_all([CareSite(id="home-1", name="Home 1"), CareSite(id="home-2", name="Home 2")])
        s.flush()
        s.add_all([Gateway(id="gw-1", site="home-1"), Gateway(id="gw-2", site="home-2"),
                   Gateway(id="gw-old", site=None),
                   Patient(id="p-1", site_id="home-1", first_seen=T),
                   Patient(id="p-2", site_id="home-2", first_seen=T)])
    yield made
    engine.dispose()


def _work(*items: tuple[str, str | None, str | None]) -> Work:
    """(gateway, patient, site claimed by the batch) per reading."""
    work = Work()
    for n, (gw, pid, claimed) in enumerate(items):
        r = replace(reading(Kind.GLUCOSE, 100.0, T, pid=pid or "x", gateway=gw,
                            rid=f"{n:032x}"), patient_id=pid)
        work.readings.append((r, claimed))
    return work


def _run(sessions: sessionmaker[Session], work: Work, registry: Registry | None = None
         ) -> Work:
    with sessions() as s:
        authorise(work, registry or Registry(), s)
    return work


def test_readings_are_kept_under_their_gateways_registered_site(
        sessions: sessionmaker[Session]) -> None:
    work = _run(sessions, _work(("gw-1", "p-1", "home-1"), ("gw-1", "p-1", None),
                                ("gw-1", None, None)))
    assert [site for _, site in work.readings] == ["home-1"] * 3 and not work.quarantine


def test_what_a_gateway_may_not_do(sessions: sessionmaker[Session]) -> None:
    work = _run(sessions, _work(
        ("gw-1", "p-2", "home-1"),  # another site's patient
        ("gw-1", "p-2", "home-2"),  # ... claiming that site
        ("gw-1", "p-new", "home-1"),  # a patient nobody registered
        ("gw-1", "p-1", "site-made-up"),  # a site that does not exist
        ("gw-new", "p-1", "home-1"),  # a gateway nobody registered
        ("gw-old", "p-1", "home-1")))  # a gateway of no site (seen before registration)
    assert work.readings == []
    assert [code_of(q) for q in work.quarantine] == [
        "foreign-patient", "wrong-site", "unknown-patient", "wrong-site",
        "unregistered-gateway", "unregistered-gateway"]
    assert all(q.reading_id and q.payload for q in work.quarantine)
    assert work.unregistered == {"gw-new": (1, "home-1"), "gw-old": (1, "home-1")}


def test_statuses_and_alarms_of_unregistered_gateways_or_foreign_patients(
        sessions: sessionmaker[Session]) -> None:
    work = Work(statuses=[("gw-1", {"state": "online"}), ("gw-new", {"state": "online"})])

    def alarm(pid: str) -> EdgeAlarm:
        return EdgeAlarm(pid, "dm.hypoglycaemia", "r" * 32, "urgent", "low", 40.0, T, T)

    work.alarms = [("gw-1", [alarm("p-1"), alarm("p-2")]), ("gw-new", [alarm("p-1")])]
    _run(sessions, work)
    assert work.statuses == [("gw-1", {"state": "online"})]
    assert [(g, [a.patient_id for a in some]) for g, some in work.alarms] == [("gw-1", ["p-1"])]
    assert [code_of(q) for q in work.quarantine] == ["foreign-patient", "unregistered-gateway"]
    assert work.unregistered == {"gw-new": (2, None)}


def test_a_gateway_registered_a_moment_ago_is_accepted_at_once(
        sessions: sessionmaker[Session]) -> None:
    clock = [0.0]
    registry = Registry(clock=lambda: clock[0])
    assert _run(sessions, _work(("gw-3", "p-1", None)), registry).readings == []
    with sessions.begin() as s:
        s.add(Gateway(id="gw-3", site="home-1"))
    clock[0] += registry.negative_ttl_s + 0.1
    assert len(_run(sessions, _work(("gw-3", "p-1", None)), registry).readings) == 1


def test_the_cache_is_bounded_whatever_ids_arrive(sessions: sessionmaker[Session]) -> None:
    registry = Registry(max_entries=50)
    for chunk in range(10):
        work = _work(*[("gw-1", f"p-{chunk}-{i}", None) for i in range(30)])
        _run(sessions, work, registry)
        assert len(registry._patients) <= 50


def test_a_batch_of_new_patients_is_resolved_in_a_few_queries(
        sessions: sessionmaker[Session]) -> None:
    """2,000 patients never met: one query for the gateway and one per 500 patients, not a
    session or a query per patient; the same patients again: none (the cache)."""
    with sessions.begin() as s:
        register_patients(s, [f"p-new-{i}" for i in range(2000)], "home-1")
    selects: list[str] = []

    @event.listens_for(sessions.kw["bind"], "before_cursor_execute")
    def _count(conn: object, cursor: object, statement: str, *_: object) -> None:
        selects.append(statement)

    registry = Registry()
    batch = [("gw-1", f"p-new-{i}", None) for i in range(2000)]
    work = _run(sessions, _work(*batch), registry)
    assert len(work.readings) == 2000 and not work.quarantine
    assert len(selects) == 1 + 4
    _run(sessions, _work(*batch), registry)
    assert len(selects) == 5
