"""The pages keep a nurse logged in for the shift: in Debian's Chromium (headless, Playwright)
against the API served in process (``tests/cloud_api/api_kit``: SQLite and a fake store, no
broker needed).

An expired or rejected access token is renewed with the refresh token, once even when the
inbox and its live feed hit the 401 together; a refused refresh goes back to the login page;
the logout button revokes the login's refresh tokens.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from cloud_api.api import create_app
from cloud_api.db import AuditEntry, RefreshToken
from tests.cloud_api.api_kit import PASSWORD, Api, make_api
from tests.conftest import wait_for
from vigie.services import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

playwright_api = pytest.importorskip("playwright.sync_api")
if shutil.which(CHROMIUM) is None:
    pytest.skip("Debian's chromium is not installed (scripts/setup)", allow_module_level=True)


def _serve(api: Api) -> Iterator[tuple[Api, str]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api.ctx), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "uvicorn")
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Api, str]]:
    for api in make_api(tmp_path):
        yield from _serve(api)


@pytest.fixture
def page(served: tuple[Api, str]) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(locale="en-GB")
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        yield pg
        browser.close()


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/ui/")
    page.wait_for_url("**/ui/login**")
    page.fill("input[name=username]", "nurse-alpha")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/")
    page.wait_for_selector("#feed.up")


def _store(page: Any, key: str) -> Any:
    return page.evaluate(f"sessionStorage.getItem('{key}')")


def _refreshes(api: Api) -> list[tuple[str, dict[str, Any] | None]]:
    with api.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == "token.refresh")
                               .order_by(AuditEntry.id))
        return [(r.outcome, r.detail) for r in rows]


def test_a_rejected_token_is_renewed_once_for_the_inbox_and_its_feed(
        served: tuple[Api, str], page: Any) -> None:
    api, base = served
    _login(page, base)
    first = _store(page, "vigie.refresh")
    assert first and _store(page, "vigie.token")
    page.evaluate("sessionStorage.setItem('vigie.token', 'expired-or-garbled')")
    page.reload()
    page.wait_for_selector("#feed.up")  # the live feed reconnected with the new token
    page.locator("#inbox-list .alert").first.wait_for()
    assert page.url == f"{base}/ui/"
    assert _store(page, "vigie.refresh") not in (None, first)
    assert [outcome for outcome, _ in _refreshes(api)] == ["ok"], "one refresh, no reuse"


def test_the_token_is_renewed_before_it_expires(served: tuple[Api, str], page: Any) -> None:
    api, base = served
    _login(page, base)
    first = _store(page, "vigie.refresh")
    page.evaluate("sessionStorage.setItem('vigie.renew_at', String(Date.now() + 500))")
    page.goto(f"{base}/ui/patients")  # the renewal timer of the page fires, no 401 needed
    wait_for(lambda: _refreshes(api), 10, "a refresh")
    wait_for(lambda: _store(page, "vigie.refresh") != first, 10, "a new refresh token")
    renew_at = float(_store(page, "vigie.renew_at"))
    now = page.evaluate("Date.now()")
    assert 13 * 60_000 < renew_at - now <= 14 * 60_000, "renewed a minute before expiry"
    page.locator("table.grid").wait_for()
    assert [outcome for outcome, _ in _refreshes(api)] == ["ok"]


def test_a_refused_refresh_goes_back_to_the_login_page(served: tuple[Api, str],
                                                       page: Any) -> None:
    api, base = served
    _login(page, base)
    page.evaluate("sessionStorage.setItem('vigie.token', 'expired-or-garbled');"
                  "sessionStorage.setItem('vigie.refresh', 'revoked-long-ago')")
    page.goto(f"{base}/ui/patients")
    page.wait_for_url("**/ui/login?next=*expired=1")
    assert _store(page, "vigie.refresh") is None and _store(page, "vigie.token") is None
    assert {outcome for outcome, _ in _refreshes(api)} == {"denied"}


def test_the_logout_button_revokes_the_login(served: tuple[Api, str], page: Any) -> None:
    api, base = served
    _login(page, base)
    page.click("#logout")
    page.wait_for_url(f"{base}/ui/login")
    assert _store(page, "vigie.refresh") is None
    with api.session() as session:
        tokens = list(session.scalars(select(RefreshToken)))
    assert tokens and all(t.revoked and t.revoked_reason == "logout" for t in tokens)
