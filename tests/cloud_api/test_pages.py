"""The web pages: served by the app, both languages, nothing from another origin."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cloud_api.web import i18n
from tests.cloud_api.api_kit import Api


@pytest.mark.parametrize("path", ["/ui/", "/ui/login", "/ui/patients", "/ui/patients/p-1",
                                  "/ui/gateways", "/ui/attribution"])
def test_every_page_is_a_shell_with_a_strict_policy(api: Api, path: str) -> None:
    resp = api.client.get(path)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"https?://", resp.text), "nothing from the internet"


def test_language_follows_accept_language_then_the_asked_one(api: Api) -> None:
    en = api.client.get("/ui/", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
    assert '<html lang="en"' in en.text
    fr = api.client.get("/ui/", headers={"Accept-Language": "de, fr;q=0.8, en;q=0.2"})
    assert '<html lang="fr"' in fr.text
    asked = api.client.get("/ui/?lang=en", headers={"Accept-Language": "fr"})
    assert '<html lang="en"' in asked.text


def test_both_languages_have_the_same_words() -> None:
    assert set(i18n.TEXT["fr"]) == set(i18n.TEXT["en"])
    script = (Path(i18n.__file__).parent / "static" / "app.js").read_text()
    words = set(re.findall(r'\bt\("([a-z_0-9]+)"\)', script))
    assert words <= set(i18n.TEXT["en"]), words - set(i18n.TEXT["en"])


def test_the_shell_carries_no_patient_data_and_escapes_its_argument(api: Api) -> None:
    page = api.client.get('/ui/patients/x"><script>').text
    assert "<script>alert" not in page and 'data-arg=""' in page
    island = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', page, re.S)
    assert island is not None and json.loads(island.group(1)) == i18n.TEXT


def test_static_files_and_root_redirect(api: Api) -> None:
    assert api.client.get("/ui/static/app.js").status_code == 200
    assert api.client.get("/ui/static/style.css").status_code == 200
    root = api.client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
