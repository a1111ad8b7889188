"""Refresh tokens: a login lasts a shift, access tokens 15 minutes; rotation, reuse detection,
expiry, logout, disabled and removed users, the audit trail, clear 401s.

Time is moved through the ``TokenIssuer``'s clock, never slept; it is only ever set to the
present or the past, since an access token issued "in the future" is not valid yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from cloud_api import accounts
from cloud_api import refresh as refresh_store
from cloud_api.db import AuditEntry, DisabledUser, RefreshToken, User, UserSite
from cloud_api.security import REFRESH_TTL, TOKEN_TTL, TokenIssuer
from tests.cloud_api.api_kit import PASSWORD, SECRET, Api, make_api, table_of
from vigie.contract import now_utc


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(now_utc())


@pytest.fixture
def timed(tmp_path: Path, clock: Clock) -> Iterator[Api]:
    yield from make_api(tmp_path, TokenIssuer(SECRET, clock=clock))


def login(api: Api, username: str = "nurse-alpha") -> dict[str, Any]:
    resp = api.client.post("/token", data={"username": username, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def refresh(api: Api, token: str, *, as_json: bool = False) -> Any:
    if as_json:
        return api.client.post("/token/refresh", json={"refresh_token": token})
    return api.client.post("/token/refresh", data={"refresh_token": token})


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def refused(resp: Any, words: str) -> None:
    assert resp.status_code == 401, resp.text
    assert words in resp.json()["detail"], resp.text
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def rows(api: Api, username: str | None = None) -> list[RefreshToken]:
    with api.session() as session:
        q = select(RefreshToken).order_by(RefreshToken.id)
        if username:
            q = q.where(RefreshToken.username == username)
        return list(session.scalars(q))


def audit_rows(api: Api, *actions: str) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    with api.session() as session:
        q = (select(AuditEntry).where(AuditEntry.action.in_(actions))
             .order_by(AuditEntry.id))
        return [(r.username, r.action, r.outcome, r.detail) for r in session.scalars(q)]


def test_login_gives_a_refresh_token_kept_only_as_a_hash(api: Api) -> None:
    body = login(api)
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] in (REFRESH_TTL.total_seconds(),
                                          REFRESH_TTL.total_seconds() - 1)
    assert timedelta(hours=12) == REFRESH_TTL
    token = body["refresh_token"]
    assert len(token) >= 43  # 32 random bytes in URL-safe base64: 256 bits
    (row,) = rows(api)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in vars(row).values()}, "never the token itself"
    assert row.username == "nurse-alpha" and not row.revoked and row.last_used_at is None
    assert row.expires_at - row.created_at == REFRESH_TTL
    assert login(api)["refresh_token"] != token


def test_refresh_gives_a_new_access_token_and_rotates(api: Api) -> None:
    first = login(api)
    second = refresh(api, first["refresh_token"])
    assert second.status_code == 200, second.text
    assert second.headers["Cache-Control"] == "no-store"
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"] and new["expires_in"] == 900
    claims = jwt.decode(new["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "nurse-alpha" and claims["exp"] - claims["iat"] == 900
    assert api.client.get("/alerts", headers=bearer(new)).status_code == 200
    third = refresh(api, new["refresh_token"], as_json=True)  # JSON works as well as a form
    assert third.status_code == 200, third.text
    old, mid, last = rows(api)
    assert (old.revoked, old.revoked_reason, mid.revoked, last.revoked) == (
        True, "rotated", True, False)
    assert old.last_used_at is not None and last.last_used_at is None
    assert len({old.family, mid.family, last.family}) == 1
    assert last.expires_at == old.expires_at, "a refresh does not extend the session"
    assert [(u, o) for u, _, o, _ in audit_rows(api, "login", "token.refresh")] == [
        ("nurse-alpha", "ok")] * 3


def test_reusing_a_rotated_token_fails_and_revokes_the_newer_one(api: Api) -> None:
    stolen = login(api)["refresh_token"]
    other_tablet = login(api)["refresh_token"]
    newer = refresh(api, stolen).json()["refresh_token"]
    newer = refresh(api, newer).json()["refresh_token"]  # the chain went on: no lost reply
    refused(refresh(api, stolen), "already used")
    refused(refresh(api, newer), "revoked")
    assert all(r.revoked for r in rows(api) if r.family == rows(api)[0].family)
    assert refresh(api, other_tablet).status_code == 200, "another login is not touched"
    denied = [(u, o, d) for u, _, o, d in audit_rows(api, "token.refresh") if o == "denied"]
    assert [(u, d and d["reason"]) for u, _, d in denied] == [("nurse-alpha", "reused"),
                                                              ("nurse-alpha", "revoked")]


def test_two_refreshes_racing_with_one_token_do_not_both_win(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    token = login(api)["refresh_token"]
    real = accounts.principal
    raced: list[bool] = []

    def the_other_request_wins_meanwhile(session: Any, username: str) -> Any:
        if not raced:  # between our read of the token and our compare-and-set
            raced.append(True)
            assert refresh(api, token).status_code == 200
        return real(session, username)

    monkeypatch.setattr(accounts, "principal", the_other_request_wins_meanwhile)
    with api.ctx.sessions.begin() as session:
        out = refresh_store.rotate(session, token, api.ctx.tokens)
    assert isinstance(out, refresh_store.RefreshRefused) and out.reason == "reused"
    assert all(r.revoked for r in rows(api)), "the winner's new token is revoked too"


def test_an_expired_refresh_token_is_refused(timed: Api, clock: Clock) -> None:
    start = clock.at
    clock.at = start - REFRESH_TTL - timedelta(seconds=1)
    token = login(timed)["refresh_token"]
    clock.at = start
    refused(refresh(timed, token), "expired")
    assert audit_rows(timed, "token.refresh")[-1][3] == {
        "reason": "expired", "family": rows(timed)[0].family}


def test_the_session_ends_a_shift_after_the_login_however_often_refreshed(
        timed: Api, clock: Clock) -> None:
    start = clock.at
    clock.at = start - REFRESH_TTL + timedelta(minutes=10)
    token = login(timed)["refresh_token"]
    clock.at = start - timedelta(minutes=1)
    body = refresh(timed, token).json()
    assert body["refresh_expires_in"] == 11 * 60
    clock.at = start + timedelta(minutes=11)  # read only by the refresh store, not by JWTs
    refused(refresh(timed, body["refresh_token"]), "expired")


def test_the_refresh_lifetime_is_configurable(tmp_path: Path) -> None:
    issuer = TokenIssuer(SECRET, refresh_ttl=timedelta(hours=8))
    for api in make_api(tmp_path, issuer):
        assert login(api)["refresh_expires_in"] in (8 * 3600, 8 * 3600 - 1)


def test_an_access_token_still_expires_after_15_minutes(timed: Api, clock: Clock) -> None:
    assert timedelta(minutes=15) == TOKEN_TTL
    start = clock.at
    clock.at = start - TOKEN_TTL - timedelta(seconds=1)
    body = login(timed)
    refused(timed.client.get("/alerts", headers=bearer(body)), "token expired")
    clock.at = start - TOKEN_TTL + timedelta(seconds=30)
    fresh = refresh(timed, body["refresh_token"]).json()
    assert timed.client.get("/alerts", headers=bearer(fresh)).status_code == 200
    claims = jwt.decode(fresh["access_token"], SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 900


def test_logout_revokes_this_login_or_every_login(api: Api) -> None:
    tablet = login(api)
    desk = login(api)
    assert api.client.post("/logout").status_code == 401, "logout needs a token"
    out = api.client.post("/logout", headers=bearer(tablet),
                          data={"refresh_token": tablet["refresh_token"]})
    assert out.status_code == 200 and out.json() == {"revoked": 1}
    refused(refresh(api, tablet["refresh_token"]), "revoked")
    desk = refresh(api, desk["refresh_token"]).json()  # the other login goes on
    everywhere = api.client.post("/logout", headers=bearer(desk))
    assert everywhere.status_code == 200 and everywhere.json() == {"revoked": 1}
    refused(refresh(api, desk["refresh_token"]), "revoked")
    assert [(u, o, d) for u, _, o, d in audit_rows(api, "logout")] == [
        ("nurse-alpha", "ok", {"scope": "login", "revoked": 1}),
        ("nurse-alpha", "ok", {"scope": "everywhere", "revoked": 1})]


def test_logout_leaves_another_users_token_alone(api: Api) -> None:
    alpha, bravo = login(api), login(api, "nurse-bravo")
    out = api.client.post("/logout", headers=bearer(alpha),
                          json={"refresh_token": bravo["refresh_token"]})
    assert out.status_code == 200 and out.json() == {"revoked": 0}
    assert refresh(api, bravo["refresh_token"]).status_code == 200


def test_a_disabled_user_cannot_refresh_log_in_or_use_its_token(api: Api) -> None:
    body = login(api)
    with api.ctx.sessions.begin() as session:
        assert accounts.disable_user(session, "nurse-alpha", by="root")
        assert not accounts.disable_user(session, "nurse-alpha", by="root")
    refused(refresh(api, body["refresh_token"]), "revoked")
    refused(api.client.get("/alerts", headers=bearer(body)), "user no longer exists")
    resp = api.client.post("/token", data={"username": "nurse-alpha", "password": PASSWORD})
    refused(resp, "incorrect username or password")
    with api.ctx.sessions.begin() as session:
        assert accounts.enable_user(session, "nurse-alpha")
    body = login(api)
    assert refresh(api, body["refresh_token"]).status_code == 200


def test_a_user_disabled_or_removed_behind_the_apis_back_cannot_refresh(api: Api) -> None:
    nurse, physician = login(api), login(api, "physician-alpha")
    with api.ctx.sessions.begin() as session:
        session.add(DisabledUser(username="nurse-alpha", disabled_at=now_utc(),
                                 disabled_by="sql"))
        # its site memberships first: PostgreSQL enforces the foreign key
        session.execute(table_of(UserSite).delete().where(UserSite.username == "physician-alpha"))
        session.execute(table_of(User).delete().where(User.username == "physician-alpha"))
    refused(refresh(api, nurse["refresh_token"]), "user no longer exists or is disabled")
    refused(refresh(api, physician["refresh_token"]), "user no longer exists or is disabled")
    assert all(r.revoked and r.revoked_reason == "user" for r in rows(api))


@pytest.mark.parametrize(("kwargs", "status", "words"), [
    ({"data": {"refresh_token": "not-a-token-we-gave"}}, 401, "invalid refresh token"),
    ({"json": {"refresh_token": "x" * 600}}, 422, "at most 512"),
    ({"json": {}}, 422, "Field required"),
    ({"json": {"refresh_token": 12}}, 422, "valid string"),
    ({"json": ["nope"]}, 422, "valid dictionary"),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400,
     "not valid JSON"),
    ({}, 422, "Field required"),
])
def test_refresh_errors_are_clear_and_never_500(api: Api, kwargs: dict[str, Any],
                                                status: int, words: str) -> None:
    resp = api.client.post("/token/refresh", **kwargs)
    assert resp.status_code == status, resp.text
    assert words in resp.text
    if status == 401:
        assert audit_rows(api, "token.refresh") == [
            ("-", "token.refresh", "denied", {"reason": "unknown"})]


def test_expired_sessions_are_forgotten_at_the_next_login(timed: Api, clock: Clock) -> None:
    start = clock.at
    clock.at = start - REFRESH_TTL - timedelta(hours=1)
    login(timed)
    clock.at = start
    login(timed)
    assert len(rows(timed)) == 1


# -- a lost reply (the ward's Wi-Fi): the spent token answered again within the grace ------

def test_a_lost_reply_is_answered_again_within_the_grace(api: Api) -> None:
    first = login(api)["refresh_token"]
    lost = refresh(api, first)  # the answer never reaches the tablet
    assert lost.status_code == 200
    again = refresh(api, first)  # the page tries again with the token it still holds
    assert again.status_code == 200, again.text
    assert api.client.get("/alerts", headers=bearer(again.json())).status_code == 200
    lost_twice = refresh(api, first)  # lost again: each retry within 30 s of the last
    assert lost_twice.status_code == 200, lost_twice.text
    third = refresh(api, lost_twice.json()["refresh_token"])
    assert third.status_code == 200, "the session goes on from the last answer"
    reasons = [r.revoked_reason for r in rows(api)]
    assert reasons == ["rotated", "superseded", "superseded", "rotated", None]
    details = [d for _, _, o, d in audit_rows(api, "token.refresh") if o == "ok"]
    assert [bool(d and d.get("replaced")) for d in details] == [False, True, True, False]


def test_a_superseded_token_presented_later_ends_the_session(api: Api) -> None:
    """The answer was not lost after all, or a copy was replayed within the grace: two
    holders of one chain. The first use of the superseded branch revokes the family."""
    first = login(api)["refresh_token"]
    kept = refresh(api, first).json()["refresh_token"]
    replayed = refresh(api, first).json()["refresh_token"]
    refused(refresh(api, kept), "already used")
    refused(refresh(api, replayed), "revoked")
    assert all(r.revoked for r in rows(api))


def test_no_grace_once_the_successor_was_used(api: Api) -> None:
    first = login(api)["refresh_token"]
    second = refresh(api, first).json()["refresh_token"]
    third = refresh(api, second).json()["refresh_token"]
    refused(refresh(api, first), "already used")
    refused(refresh(api, third), "revoked")


def test_no_grace_after_30_seconds(timed: Api, clock: Clock) -> None:
    start = clock.at
    clock.at = start - timedelta(seconds=31)
    first = login(timed)["refresh_token"]
    assert refresh(timed, first).status_code == 200  # its answer lost
    clock.at = start
    refused(refresh(timed, first), "already used")
    assert all(r.revoked for r in rows(timed))


def test_the_grace_can_be_turned_off(tmp_path: Path) -> None:
    for api in make_api(tmp_path, TokenIssuer(SECRET, refresh_grace=timedelta(0))):
        first = login(api)["refresh_token"]
        assert refresh(api, first).status_code == 200
        refused(refresh(api, first), "already used")
