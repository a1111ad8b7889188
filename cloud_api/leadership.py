"""Active and standby cloud processes on one PostgreSQL: who does the ingest.

Two (or more) ``vigie cloud run`` on one PostgreSQL database both serve the API; the ingest
(MQTT -> InfluxDB -> rules, the lifecycle ticks) and the notification sender run only in the
process holding a session-level advisory lock (``pg_try_advisory_lock``) on a connection of
its own. The others poll for the lock every ``poll_s``. The lock lives as long as that
connection: when the active process dies, even by ``kill -9``, its connection closes and
PostgreSQL frees the lock, and a standby takes it at its next poll. Everything it needs
is where the dead one left it: the readings not acknowledged are still in the broker's
persistent session (the standby connects with the same client id), alerts and their
notifications are in the database.

The active process checks its lock connection every ``poll_s`` too. If the connection is
lost (a database restart, a network cut) the lock may already be someone else's: the
process stops working at once and exits (``run_cloud``), to be restarted as a standby by its
supervisor. Between the loss and that check, two processes may work for a moment: writes
to InfluxDB are idempotent and alert transitions are compare-and-set, so that moment costs
duplicates of work, not of data.

SQLite has no such lock and no second machine: there, ``Leadership`` is not used.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# pg_try_advisory_lock key of the ingest ("VIGIE" and 1; the migrations use ...0001 as a
# transaction lock, a different lock space would not be needed but keeps them apart)
INGEST_LOCK: Final = 0x56494749_45000002
POLL_S: Final = 2.0
# libpq keepalives: a peer gone without closing (a cut cable) is noticed within ~30 s
_KEEPALIVES: Final = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                      "keepalives_count": 3, "connect_timeout": 10}


def applies(db_url: str) -> bool:
    """Leadership needs PostgreSQL (SQLite: one process, and no advisory locks)."""
    return make_url(db_url).get_backend_name() == "postgresql"


class Leadership:
    """The advisory lock of ``key`` on a dedicated connection to ``db_url``."""

    def __init__(self, db_url: str, key: int = INGEST_LOCK, poll_s: float = POLL_S) -> None:
        self.key = key
        self.poll_s = poll_s
        self._engine = create_engine(db_url, poolclass=NullPool, connect_args=_KEEPALIVES)
        self._conn: Connection | None = None
        self.held = threading.Event()

    def _try(self) -> bool:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                 {"key": self.key}).scalar_one()
        return bool(got)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except DBAPIError as exc:  # already broken: nothing more to release
                log.debug("closing the lock connection: %s", exc)

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for the lock (polling every ``poll_s``) until it is held or ``stop`` is set."""
        waiting_said = False
        while not stop.is_set():
            try:
                if self._try():
                    self.held.set()
                    log.info("leadership taken: this process runs the ingest")
                    return True
                if not waiting_said:
                    log.info("standby: another process holds the ingest lock; polling every "
                             "%.0f s", self.poll_s)
                    waiting_said = True
            except DBAPIError as exc:
                log.warning("standby: cannot reach PostgreSQL for the ingest lock: %s", exc)
                self._drop_connection()
            stop.wait(self.poll_s)
        return False

    def still_held(self) -> bool:
        """Whether the lock connection is alive (the lock lives exactly as long as it)."""
        if self._conn is None or not self.held.is_set():
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except DBAPIError as exc:
            log.error("leadership lost: the ingest lock's connection failed: %s", exc)
            self.held.clear()
            self._drop_connection()
            return False

    def watch(self, stop: threading.Event) -> bool:
        """While leader: check the lock every ``poll_s`` until ``stop`` (True) or the lock is
        lost (False)."""
        while not stop.wait(self.poll_s):
            if not self.still_held():
                return False
        return True

    def release(self) -> None:
        """Give the lock back (closing the connection frees it)."""
        self.held.clear()
        self._drop_connection()
        self._engine.dispose()
