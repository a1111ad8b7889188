"""The Python API client renews its access token with the refresh token, not the password."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from cloud_api.client import PasswordAuth
from cloud_api.db import AuditEntry
from tests.cloud_api.api_kit import PASSWORD, Api, make_api


def _actions(api: Api) -> list[tuple[str, str]]:
    with api.session() as session:
        rows = session.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(("login", "token.refresh"))).order_by(AuditEntry.id))
        return [(r.action, r.outcome) for r in rows]


def test_a_rejected_token_is_renewed_by_refresh_then_by_password(tmp_path: Path) -> None:
    for api in make_api(tmp_path):
        auth = PasswordAuth("nurse-alpha", PASSWORD)
        assert api.client.get("/patients", auth=auth).status_code == 200
        assert _actions(api) == [("login", "ok")]
        auth._token = "expired-or-garbled"
        assert api.client.get("/patients", auth=auth).status_code == 200
        assert _actions(api) == [("login", "ok"), ("token.refresh", "ok")]
        auth._token, auth._refresh = "expired-or-garbled", "revoked-long-ago"
        assert api.client.get("/patients", auth=auth).status_code == 200
        assert _actions(api)[-2:] == [("token.refresh", "denied"), ("login", "ok")]
