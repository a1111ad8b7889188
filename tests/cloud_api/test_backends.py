"""What SQLite takes and PostgreSQL refuses, stored alike on both (run with
``VIGIE_TEST_DB=postgresql`` for the second)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from cloud_api.db import Quarantine, make_engine, make_sessions
from cloud_api.stages.refusal import refusal
from tests.dbkit import database_url


def test_a_quarantined_payload_with_nul_and_oversized_ids_is_stored(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path))
    try:
        with make_sessions(engine).begin() as session:
            session.add(refusal("vigie/v1/gateways/gw/observations", "gw", "schema",
                                "bad\x00reason", b"\x00\x01 payload", reading_id="r" * 300))
        with make_sessions(engine)() as session:
            row = session.scalars(select(Quarantine)).one()
        assert row.reason == "schema: bad\ufffdreason"
        assert row.payload == "\ufffd\x01 payload"
        assert row.reading_id == "r" * 64
    finally:
        engine.dispose()
