"""Audit: every read and change of patient data leaves a row; a change never lacks its row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud_api import audit
from cloud_api.db import Alert, AuditEntry
from tests.cloud_api.api_kit import Api, make_api

START = {"start": "2000-01-01T00:00:00Z"}


def _rows(api: Api, action: str | None = None) -> list[AuditEntry]:
    with api.session() as session:
        q = select(AuditEntry).where(AuditEntry.action != "login").order_by(AuditEntry.id)
        if action:
            q = q.where(AuditEntry.action == action)
        return list(session.scalars(q))


def _brief(rows: list[AuditEntry]) -> list[tuple[str, str, str | None, str | None, str]]:
    return [(r.username, r.action, r.patient_id, r.site_id, r.outcome) for r in rows]


def test_observation_reads_are_audited_allowed_or_not(api: Api) -> None:
    h = api.token("nurse-alpha")
    api.client.get(f"/patients/{api.alpha.patient}/observations", headers=h, params=START)
    api.client.get(f"/patients/{api.bravo.patient}/observations", headers=h, params=START)
    assert _brief(_rows(api)) == [
        ("nurse-alpha", "observations.read", "p-alpha-1", "site-alpha", "ok"),
        ("nurse-alpha", "observations.read", "p-bravo-7", "site-bravo", "not_found")]
    assert _rows(api)[0].detail == {"count": 3}


def test_alert_list_records_whose_alerts_were_shown(api: Api) -> None:
    api.client.get("/alerts", headers=api.token("root"))
    (row,) = _rows(api)
    assert (row.action, row.outcome) == ("alerts.list", "ok")
    assert row.detail == {"count_patients": 2, "patients": ["p-alpha-1", "p-bravo-7"]}


def test_acknowledge_and_history_are_audited(api: Api) -> None:
    h = api.token("nurse-alpha")
    url = f"/alerts/{api.alpha.alert_id}"
    assert api.client.post(f"{url}/acknowledge", headers=h, json={}).status_code == 200
    assert api.client.post(f"{url}/acknowledge", headers=h, json={}).status_code == 409
    api.client.get(f"{url}/history", headers=h)
    api.client.post(f"/alerts/{api.bravo.alert_id}/acknowledge", headers=h, json={})
    assert _brief(_rows(api)) == [
        ("nurse-alpha", "alert.acknowledge", "p-alpha-1", "site-alpha", "ok"),
        ("nurse-alpha", "alert.acknowledge", "p-alpha-1", "site-alpha", "refused"),
        ("nurse-alpha", "alert.history", "p-alpha-1", "site-alpha", "ok"),
        ("nurse-alpha", "alert.acknowledge", "p-bravo-7", "site-bravo", "not_found")]


def test_logins_are_audited(api: Api) -> None:
    api.token("nurse-alpha")
    api.client.post("/token", data={"username": "nurse-alpha", "password": "wrong one"})
    with api.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == "login"))
        assert [(r.username, r.outcome) for r in rows] == [("nurse-alpha", "ok"),
                                                          ("nurse-alpha", "denied")]


@pytest.fixture
def fragile_api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path, raise_server_exceptions=False)


def test_a_change_whose_audit_row_cannot_be_written_does_not_happen(
        fragile_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = fragile_api
    h = api.token("nurse-alpha")
    real = audit.Note.row

    def broken(self: audit.Note, outcome: str) -> Any:
        if outcome == "ok":
            raise RuntimeError("audit store down")
        return real(self, outcome)

    monkeypatch.setattr(audit.Note, "row", broken)
    resp = api.client.post(f"/alerts/{api.alpha.alert_id}/acknowledge", headers=h, json={})
    assert resp.status_code == 500
    obs = api.client.get(f"/patients/{api.alpha.patient}/observations", headers=h,
                         params=START)
    assert obs.status_code == 500, "no data served without its audit row"
    with api.session() as session:
        alert = session.get(Alert, api.alpha.alert_id)
        assert alert is not None and alert.state == "open", "nothing half-written"
    assert [r.outcome for r in _rows(api)] == ["error", "error"]


def test_audit_log_is_for_admins_and_scoped_to_their_sites(api: Api) -> None:
    api.client.get(f"/patients/{api.alpha.patient}/observations",
                   headers=api.token("nurse-alpha"), params=START)
    api.client.get(f"/patients/{api.bravo.patient}/observations",
                   headers=api.token("nurse-bravo"), params=START)
    assert api.client.get("/audit", headers=api.token("nurse-alpha")).status_code == 403
    every = api.client.get("/audit", headers=api.token("root")).json()
    assert {r["patient"] for r in every if r["action"] == "observations.read"} == {
        "p-alpha-1", "p-bravo-7"}
    mine = api.client.get("/audit", headers=api.token("admin-alpha")).json()
    assert [(r["username"], r["patient"]) for r in mine] == [("nurse-alpha", "p-alpha-1")]
