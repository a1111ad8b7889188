"""Alembic's environment: migrate the connection ``cloud_api.migrations.upgrade`` hands over
(in its transaction, which holds the migration lock), or, for the ``alembic`` command that
writes a revision, the database of ``-x db_url=URL``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from cloud_api.db import Base


def _run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():  # nothing new when the caller's is open
        context.run_migrations()


_given = context.config.attributes.get("connection")
if _given is not None:
    _run(_given)
else:
    _url = context.get_x_argument(as_dictionary=True).get("db_url")
    if not _url:
        raise SystemExit("name the database: alembic ... -x db_url=URL")
    with create_engine(_url).connect() as _conn:
        _run(_conn)
