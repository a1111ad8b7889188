"""The clinicians' pages in Debian's Chromium (headless, driven by Playwright) on a running
chain: Mosquitto, InfluxDB, ``vigie cloud run`` and a gateway process.

A nurse logs in, watches the inbox while a gateway sends a falling glucose series (the low
alert must appear without a reload, over the server-sent events feed), acknowledges it with a
comment, opens the patient's trend, and assigns a weighing of the ward's shared scale that
nobody could attribute. Screenshots go to ``artifacts/screenshots/``.

Playwright's own browser download is not used (``playwright install`` is not allowed here):
the Debian ``chromium`` package is launched by path.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ADMIN_PASSWORD, Cloud, add_user, wait_for
from vigie.contract import iso, now_utc

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
NURSE, NURSE_PASSWORD = "it-nurse", "browser tests only"
PATIENT = "p-0101"
DAY_ZONE = ZoneInfo("Europe/Paris")  # the cloud's default --day-zone

playwright_api = pytest.importorskip("playwright.sync_api")
if shutil.which(CHROMIUM) is None:
    pytest.skip("Debian's chromium is not installed (scripts/setup)", allow_module_level=True)


def _replay(path: Path) -> None:
    """A falling CGM series of the patient ending in a low, and two shared-scale weighings."""
    now = now_utc().replace(microsecond=0)
    lines: list[dict[str, Any]] = []
    for i in range(36):
        t = now - timedelta(minutes=5 * (36 - i))
        lines.append({"device": "cgm-1", "kind": "glucose", "value": 150 - 2.5 * i,
                      "unit": "mg/dL", "time": iso(t), "seq": i + 1})
    lines.append({"device": "cgm-1", "kind": "glucose", "value": 48, "unit": "mg/dL",
                  "time": iso(now - timedelta(minutes=1)), "seq": 40})
    for i, kg in enumerate((71.4, 64.9)):
        lines.append({"device": "ward-scale", "kind": "weight", "value": kg, "unit": "kg",
                      "time": iso(now - timedelta(minutes=30 - i)), "seq": i + 1,
                      "user_index": 7})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_nurse_sees_acknowledges_reads_the_trend_and_attributes(
        cloud: Cloud, gateway_factory: Any, browser: Any, tmp_path: Path) -> None:
    add_user(cloud.db_url, NURSE, NURSE_PASSWORD, "nurse", "site-1")
    replay = tmp_path / "replay.jsonl"
    _replay(replay)
    # a browser in another zone than the cloud's days: the charts follow the trend's day_zone
    ctx = browser.new_context(viewport={"width": 1180, "height": 820}, locale="fr-FR",
                              timezone_id="America/New_York",
                              extra_http_headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    base = f"http://127.0.0.1:{cloud.api_port}"

    page.goto(f"{base}/ui/")
    page.wait_for_url("**/ui/login**")
    page.fill("input[name=username]", NURSE)
    page.fill("input[name=password]", NURSE_PASSWORD)
    _shot(page, "01-login")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/")
    page.wait_for_selector("#feed.up")  # the live feed is connected
    assert page.locator(".alert").count() == 0

    gateway_factory("gw-ward", replay, patients={"cgm-1": PATIENT}).start()
    card = page.locator(".alert", has_text=PATIENT).first
    card.wait_for(timeout=30_000)  # arrives over SSE, no reload
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    _shot(page, "02-inbox-new-alert")
    # alert texts in the page's language (French), not the API's English ``message``
    page.locator(".alert .msg", has_text="Hypoglycémie de niveau").first.wait_for()

    card.locator("button.ack").click()
    page.fill("#comment", "Resucrage 15 g, contrôle à 15 min")
    page.click("#confirm")
    page.locator(".alert.st-acknowledged", has_text=PATIENT).first.wait_for()
    _shot(page, "03-inbox-acknowledged")
    history = cloud.api.get(f"/alerts/{card.get_attribute('data-alert')}/history").json()
    assert history[-1]["who"] == NURSE and "Resucrage" in history[-1]["comment"]
    # the history in the page: the system's line in French, the nurse's comment as written
    page.locator(".alert.st-acknowledged", has_text=PATIENT).first.locator(
        "button.history").click()
    lines = page.locator("#history-dialog ol.history li")
    lines.last.wait_for()
    texts = lines.all_inner_texts()
    assert "Vigie (automatique)" in texts[0] and "Hypoglycémie de niveau" in texts[0], texts
    assert NURSE in texts[-1] and "acquittée" in texts[-1] and "Resucrage 15 g" in texts[-1]
    assert any("aggravation : Hypoglycémie de niveau 2 : 48" in x for x in texts), texts
    _shot(page, "03b-alert-history")
    page.click("#history-dialog button[value=close]")
    page.locator("#history-dialog").wait_for(state="detached")

    page.goto(f"{base}/ui/patients/{PATIENT}?days=1")
    page.locator("#chart-glucose svg polyline").wait_for()
    assert page.locator("#alert-lane .pin").count() >= 1
    _shot(page, "04-patient-trend")
    alerts = cloud.api.get(f"/patients/{PATIENT}/trend", params={"days": 1}).json()["alerts"]
    local = [datetime.fromisoformat(a["time"]).astimezone(DAY_ZONE) for a in alerts]
    for title in page.locator("#alert-lane .pin").evaluate_all("ps => ps.map(p => p.title)"):
        assert any(f"{t:%d/%m/%Y}" in title and f"{t:%H:%M}" in title for t in local), title

    page.goto(f"{base}/ui/patients/{PATIENT}?days=7")  # one tick per local midnight in Paris
    page.locator("#chart-glucose svg polyline").wait_for()
    ticks = page.locator("#chart-glucose text.day").evaluate_all(
        "ts => ts.map(t => [t.dataset.t, t.textContent])")
    assert 6 <= len(ticks) <= 8, ticks  # 7 but for a DST change
    for at, label in ticks:
        day = datetime.fromisoformat(at).astimezone(DAY_ZONE)
        assert (f"{day:%H:%M}", label) == ("00:00", f"{day:%d/%m}"), (at, label)

    wait_for(lambda: len(cloud.api.get("/attribution").json()) == 2, 30, "unattributed")
    page.goto(f"{base}/ui/attribution")
    row = page.locator("#queue tbody tr").first
    row.locator("select").select_option(PATIENT)
    _shot(page, "05-attribution-queue")
    row.locator("button").click()
    page.locator("td.done").wait_for()
    _shot(page, "06-attribution-done")
    assert len(cloud.api.get("/attribution").json()) == 1, "one assigned, one still queued"
    weights = cloud.api.get(f"/patients/{PATIENT}/observations",
                            params={"kind": "weight", "start": iso(now_utc()
                                                                   - timedelta(days=1))}).json()
    assert len(weights) == 1

    page.goto(f"{base}/ui/gateways")
    page.locator("#gateways tbody tr", has_text="gw-ward").wait_for()
    _shot(page, "07-gateways")
    ctx.close()


def test_an_admin_registers_a_pending_gateway_from_the_gateways_page(
        cloud: Cloud, gateway_factory: Any, browser: Any, tmp_path: Path) -> None:
    """A gateway nobody registered sends readings: they wait in quarantine, the gateways
    page lists it for the admin with the site its payload claims, and one click registers
    it at the site the admin chooses (what it sends then is stored: test_hostile_ingest)."""
    assert cloud.api.post("/sites", json={"id": "home-7", "name": "Home 7"}).status_code == 201
    replay = tmp_path / "stray.jsonl"
    _replay(replay)
    stray = gateway_factory("gw-stray", replay, registry=None).start()  # site-1, unregistered
    wait_for(lambda: cloud.api.get("/gateways/pending").json(), 30, "the gateway pending")
    ctx = browser.new_context(viewport={"width": 1180, "height": 820}, locale="en-GB")
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    base = f"http://127.0.0.1:{cloud.api_port}"
    page.goto(f"{base}/ui/login")
    page.fill("input[name=username]", cloud.username)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/")
    page.goto(f"{base}/ui/gateways")
    row = page.locator("#pending-gateways tbody tr", has_text="gw-stray")
    row.wait_for()
    assert "site-1" in row.inner_text()  # what the payload claimed, shown, not believed
    _shot(page, "07b-pending-gateway")
    row.locator("select").select_option("home-7")
    row.locator("button").click()
    page.locator("#gateways tbody tr", has_text="gw-stray").wait_for()
    assert page.locator("#pending-gateways").count() == 0
    assert cloud.api.get("/gateways/gw-stray").json()["site"] == "home-7"
    stray.stop()
    ctx.close()
