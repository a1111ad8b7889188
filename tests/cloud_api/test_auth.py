"""OAuth2 password flow: tokens, expiry, wrong passwords, roles, the signing secret."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from cloud_api import accounts
from cloud_api.db import User, UserSite, make_engine, make_sessions
from cloud_api.errors import ConfigError
from cloud_api.security import SECRET_ENV, TOKEN_TTL, TokenIssuer, load_secret
from tests.cloud_api.api_kit import PASSWORD, SECRET, Api, table_of
from tests.dbkit import database_url
from vigie.cli import app as cli
from vigie.contract import now_utc

PUBLIC = {"/health", "/ready", "/token", "/token/refresh"}  # refresh: the token is the credential


def test_password_flow_gives_a_short_lived_bearer_token(api: Api) -> None:
    resp = api.client.post("/token", data={"username": "nurse-alpha", "password": PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "nurse-alpha" and claims["exp"] - claims["iat"] == 900
    assert timedelta(minutes=15) >= TOKEN_TTL
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.client.get("/alerts", headers=headers).status_code == 200


@pytest.mark.parametrize("username", ["nurse-alpha", "nobody"])
def test_wrong_password_or_unknown_user_is_401_with_one_clear_message(api: Api,
                                                                     username: str) -> None:
    resp = api.client.post("/token", data={"username": username, "password": "not it at all"})
    assert resp.status_code == 401
    assert resp.json() == {"detail": "incorrect username or password"}
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_every_protected_route_wants_a_token(api: Api) -> None:
    for path, methods in api.client.get("/openapi.json").json()["paths"].items():
        if path in PUBLIC:
            continue
        url = path.format(**api.alpha.ids())
        for method in methods:
            resp = api.client.request(method, url, json={})
            assert resp.status_code == 401, (method, path, resp.text)
            assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_expired_token_is_refused_with_the_reason(api: Api) -> None:
    old = api.ctx.tokens.issue("nurse-alpha", now=now_utc() - TOKEN_TTL - timedelta(seconds=1))
    resp = api.client.get("/alerts", headers={"Authorization": f"Bearer {old}"})
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]


def test_forged_and_garbled_tokens_are_refused(api: Api) -> None:
    forged = TokenIssuer(b"x" * 48).issue("root")
    unsigned = jwt.encode({"sub": "root", "exp": 2**40, "iat": 0}, key="", algorithm="none")
    for token in (forged, unsigned, "garbage"):
        resp = api.client.get("/alerts", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401 and resp.json()["detail"] == "invalid token"


def test_a_removed_user_loses_access_before_the_token_expires(api: Api) -> None:
    headers = api.token("nurse-alpha")
    with api.ctx.sessions.begin() as session:
        # its site memberships first: PostgreSQL enforces the foreign key
        session.execute(table_of(UserSite).delete().where(UserSite.username == "nurse-alpha"))
        session.execute(table_of(User).delete().where(User.username == "nurse-alpha"))
    resp = api.client.get("/alerts", headers=headers)
    assert resp.status_code == 401 and resp.json()["detail"] == "user no longer exists"


@pytest.mark.parametrize(("username", "method", "path", "expected"), [
    ("nurse-alpha", "GET", "/users", 403),
    ("physician-alpha", "GET", "/quarantine", 403),
    ("nurse-alpha", "GET", "/audit", 403),
    ("physician-alpha", "POST", "/sites", 403),
    ("admin-alpha", "POST", "/sites", 403),  # creating sites is for admins of every site
    ("root", "POST", "/sites", 201),
    ("admin-alpha", "GET", "/quarantine", 200),
    ("nurse-alpha", "GET", "/gateways", 200),
])
def test_roles(api: Api, username: str, method: str, path: str, expected: int) -> None:
    body = {"id": "site-charlie", "name": "EHPAD Charlie"} if method == "POST" else None
    resp = api.client.request(method, path, headers=api.token(username), json=body)
    assert resp.status_code == expected, resp.text


def test_staff_acknowledge_in_their_own_name(api: Api) -> None:
    headers = api.token("physician-alpha")
    url = f"/alerts/{api.alpha.alert_id}"
    ack = api.client.post(f"{url}/acknowledge", headers=headers, json={"comment": "called"})
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    history = api.client.get(f"{url}/history", headers=headers).json()
    assert [(h["who"], h["to_state"]) for h in history] == [("system", "open"),
                                                           ("physician-alpha", "acknowledged")]


def test_admin_creates_users_who_can_log_in(api: Api) -> None:
    root = api.token("root")
    new = {"username": "nurse-delta", "password": "a long enough secret",
           "role": "nurse", "sites": ["site-alpha"]}
    assert api.client.post("/users", headers=root, json=new).status_code == 201
    assert api.client.post("/users", headers=root, json=new).status_code == 409
    api.token("nurse-delta", "a long enough secret")
    weak = api.client.post("/users", headers=root, json=dict(new, username="x", password="short"))
    assert weak.status_code == 422
    unknown = api.client.post("/users", headers=root,
                              json=dict(new, username="nurse-e", sites=["site-nowhere"]))
    assert unknown.status_code == 409 and "unknown site" in unknown.text
    scoped = api.client.post("/users", headers=api.token("admin-alpha"),
                             json=dict(new, username="nurse-f", sites=["site-bravo"]))
    assert scoped.status_code == 403
    with api.session() as session:
        stored = session.get(User, "nurse-delta")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")


def test_secret_is_generated_once_with_mode_0600(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = tmp_path / "secret"
    first = load_secret(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(path) == first and len(first) >= 32
    monkeypatch.setenv(SECRET_ENV, "e" * 40)
    assert load_secret(path) == b"e" * 40
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        load_secret(path)


def test_cli_adds_and_lists_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = database_url(tmp_path)
    pw = tmp_path / "pw"
    pw.write_text("a password from a file\n")
    runner = CliRunner()
    out = runner.invoke(cli, ["users", "add", "nurse-1", "--role", "nurse", "--site",
                              "ehpad-1", "--password-file", str(pw), "--db-url", db])
    assert out.exit_code == 0, out.output
    monkeypatch.setenv("VIGIE_USER_PASSWORD", "a password from the environment")
    out = runner.invoke(cli, ["users", "add", "boss", "--role", "admin", "--db-url", db])
    assert out.exit_code == 0, out.output
    again = runner.invoke(cli, ["users", "add", "boss", "--role", "admin", "--db-url", db])
    assert again.exit_code == 1 and "exists" in again.output
    listed = runner.invoke(cli, ["users", "list", "--db-url", db])
    assert listed.stdout.splitlines() == [
        '{"username": "boss", "role": "admin", "sites": []}',
        '{"username": "nurse-1", "role": "nurse", "sites": ["ehpad-1"]}']
    engine = make_engine(db)
    with make_sessions(engine)() as session:
        assert accounts.principal(session, "nurse-1") is not None
    off = runner.invoke(cli, ["users", "disable", "nurse-1", "--db-url", db])
    assert off.exit_code == 0 and "disabled" in off.output
    with make_sessions(engine)() as session:
        assert accounts.principal(session, "nurse-1") is None
    assert runner.invoke(cli, ["users", "enable", "nurse-1", "--db-url", db]).exit_code == 0
    with make_sessions(engine)() as session:
        assert accounts.principal(session, "nurse-1") is not None
    unknown = runner.invoke(cli, ["users", "disable", "nobody", "--db-url", db])
    assert unknown.exit_code == 1 and "no user" in unknown.output
    engine.dispose()
