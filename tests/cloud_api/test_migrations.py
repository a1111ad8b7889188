"""Schema migrations (``cloud_api.migrations``): the migrated schema is the models', on the
backend of the run (SQLite, or PostgreSQL with ``VIGIE_TEST_DB=postgresql``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from cloud_api.db import Base, make_engine
from cloud_api.migrations import config, upgrade
from tests.dbkit import database_url


def _diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def _version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


HEAD = ScriptDirectory.from_config(config()).get_current_head()


def test_a_new_database_is_migrated_to_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path, empty=True))
    try:
        assert _version(engine) == HEAD
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_a_database_made_by_create_all_is_adopted_as_it_is(tmp_path: Path) -> None:
    """Before migrations, every start ran ``create_all``; such a database keeps its rows and
    gets the tables it lacks (here one added after it was made)."""
    url = database_url(tmp_path, empty=True)
    old = make_engine(url, migrate=False)
    Base.metadata.create_all(old)
    with old.begin() as conn:
        conn.execute(text("DROP TABLE patient_profiles"))
        conn.execute(text("INSERT INTO care_sites (id, name) VALUES ('s-1', 'Site 1')"))
    old.dispose()
    engine = make_engine(url)
    try:
        assert _version(engine) == HEAD
        assert _diff(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM care_sites")).scalars().all() == ["Site 1"]
    finally:
        engine.dispose()


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    """Several cloud processes starting at once on a new database: the migration lock makes
    the later ones find the schema done (no "table already exists")."""
    url = database_url(tmp_path, empty=True)
    engines = [make_engine(url, migrate=False) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert _version(engines[0]) == HEAD
        assert set(inspect(engines[0]).get_table_names()) == {
            *Base.metadata.tables, "alembic_version"}
    finally:
        for e in engines:
            e.dispose()


def test_downgrade_to_nothing_and_back(tmp_path: Path) -> None:
    """Every revision can be undone (an operator's way back from a bad upgrade)."""
    engine = make_engine(database_url(tmp_path, empty=True))
    try:
        from alembic import command

        with engine.connect() as conn:
            command.downgrade(config(conn), "base")
            conn.commit()
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert _diff(engine) == []
    finally:
        engine.dispose()
