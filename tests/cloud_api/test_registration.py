"""Registering a territory (``cloud_api.tenancy.register_site``): in bulk, idempotent, and
never moving a patient registered at another site."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, select

from cloud_api.db import Patient, make_engine, make_sessions
from cloud_api.tenancy import ensure_site, register_patient, register_patients, register_site


def test_a_territory_is_registered_in_a_few_statements(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    engine = make_engine(url)
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        register_patient(session, "p-unsited", None)
        register_patient(session, "p-other", "site-b")
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn: object, cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    ids = [f"p-{i}" for i in range(5000)] + ["p-unsited", "p-other", "p-0"]
    with sessions.begin() as session:
        ensure_site(session, "site-a")
        register_patients(session, ids, "site-a")
    # the site, 10 look-ups of 500, one multi-row insert (the driver may split it), one update
    assert len(statements) < 30, len(statements)
    with sessions() as session:
        sites = {pid: at for pid, at in session.execute(select(Patient.id, Patient.site_id))}
    assert len(sites) == 5002
    assert sites["p-4999"] == sites["p-unsited"] == "site-a"
    assert sites["p-other"] == "site-b", "registered elsewhere: never moved"
    with sessions.begin() as session:
        register_patients(session, ids, "site-a")  # again: nothing changes
    with sessions() as session:
        assert session.scalar(select(Patient.first_seen).where(Patient.id == "p-0")) is not None
        assert len(session.scalars(select(Patient.id)).all()) == 5002
    engine.dispose()


def test_register_site_registers_gateways_and_patients(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    register_site(url, "site-a", ["gw-1"], ["p-1", "p-2"])
    register_site(url, "site-a", ["gw-1"], ["p-2", "p-3"])  # idempotent
    engine = make_engine(url)
    with make_sessions(engine)() as session:
        assert set(session.scalars(select(Patient.id).where(Patient.site_id == "site-a"))) \
            == {"p-1", "p-2", "p-3"}
    engine.dispose()
