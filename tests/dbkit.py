"""The cloud's relational database in tests: SQLite by default, PostgreSQL on demand.

``VIGIE_TEST_DB=postgresql`` makes every ``database_url`` a new database on one PostgreSQL
cluster (``vigie.services.PostgreSQL``) started at the first use and removed at the end of
the session; otherwise it is a SQLite file. The database is named by the test's directory
and a name, as a SQLite file would be: two clouds of one test built on the same
``tmp_path`` and name share it. Databases made during a test are dropped after it
(``drop_test_databases``), ending the sessions the test left open; those a test module
makes as it is imported last for the session.

New PostgreSQL databases are copies of a template migrated once (``CREATE DATABASE ...
TEMPLATE``), so a test does not pay for the migrations; ``empty=True`` gives one without
tables (the migration tests).
"""

from __future__ import annotations

import gc
import itertools
import os
import tempfile
from pathlib import Path
from typing import Final

from cloud_api.db import make_engine
from vigie.services import PostgreSQL

BACKEND: Final = os.environ.get("VIGIE_TEST_DB", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"VIGIE_TEST_DB must be sqlite or postgresql, not {BACKEND!r}")
TEMPLATE: Final = "vigie_template"

_server: PostgreSQL | None = None
_tmp: tempfile.TemporaryDirectory[str] | None = None
_made: dict[tuple[Path, str], str] = {}  # (directory, name) -> database, this test's
_numbers = itertools.count(1)


def on_postgresql() -> bool:
    return BACKEND == "postgresql"


def server() -> PostgreSQL:
    """The session's PostgreSQL cluster, started (and its template migrated) on first use."""
    global _server, _tmp
    if _server is None:
        _tmp = tempfile.TemporaryDirectory(prefix="vigie-test-pg-")
        pg = PostgreSQL(Path(_tmp.name), fast=True)
        pg.start()
        make_engine(pg.create_database(TEMPLATE)).dispose()
        _server = pg
    return _server


def database_url(directory: Path, name: str = "cloud", *, empty: bool = False) -> str:
    """SQLAlchemy URL of the test's database ``name`` (``directory``: the test's tmp_path)."""
    if not on_postgresql():
        return f"sqlite:///{directory / f'{name}.sqlite3'}"
    return _postgresql(directory, name, empty=empty)


def postgresql_url(directory: Path, name: str = "cloud") -> str:
    """A PostgreSQL database whatever the backend of the run (for what only PostgreSQL has:
    the standby's advisory lock)."""
    return _postgresql(directory, name, empty=False)


def _postgresql(directory: Path, name: str, *, empty: bool) -> str:
    key = (directory, name)
    if key not in _made:
        database = f"t{next(_numbers)}_{''.join(c for c in name if c.isalnum())[:20]}"
        server().create_database(database, template=None if empty else TEMPLATE)
        _made[key] = database
    return server().url(_made[key])


def made() -> set[tuple[Path, str]]:
    """The databases that exist now (``drop_test_databases`` keeps them)."""
    return set(_made)


def drop_test_databases(keep: set[tuple[Path, str]]) -> None:
    """After each test: the databases it made go, with whatever connections it left open
    (those made before it, at collection time by a module, stay for the session)."""
    if set(_made) - keep:
        # an engine the test forgot closes now, and says so in this test, not a later one
        gc.collect()
    for key in set(_made) - keep:
        database = _made.pop(key)
        if _server is not None:
            _server.drop_database(database)


def stop_server() -> None:
    global _server, _tmp
    if _server is not None:
        _server.remove()
        _server = None
    if _tmp is not None:
        _tmp.cleanup()
        _tmp = None
