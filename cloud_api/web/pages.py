"""The page routes (``/ui/...``) and the static files; left out of the OpenAPI document.

Each page is the same small HTML shell naming its page; ``static/app.js`` draws it from the
API. The shell carries the words of both languages and the server's guess from
``Accept-Language``; the toggle's choice (kept in ``localStorage``) wins.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, FastAPI, Header, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from cloud_api.routes.deps import ID_PATTERN
from cloud_api.web import i18n

STATIC: Final = Path(__file__).parent / "static"
PAGES: Final = ("login", "inbox", "patients", "patient", "gateways", "attribution")
# Everything the pages load comes from this origin; no inline script but the JSON island.
CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

router = APIRouter(include_in_schema=False)
Lang = Annotated[str | None, Query(pattern="^(fr|en)$")]
AcceptLanguage = Annotated[str | None, Header()]


def _shell(page: str, lang: str, arg: str = "") -> HTMLResponse:
    words = json.dumps(i18n.TEXT).replace("<", "\\u003c")
    body = f"""<!doctype html>
<html lang="{lang}" data-page="{page}" data-arg="{html.escape(arg, quote=True)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vigie</title>
<link rel="stylesheet" href="/ui/static/style.css">
<link rel="icon" href="data:,">
</head>
<body>
<header id="top"></header>
<main id="main" aria-live="polite"></main>
<script type="application/json" id="i18n">{words}</script>
<script src="/ui/static/app.js"></script>
</body>
</html>
"""
    return HTMLResponse(body, headers={"Content-Security-Policy": CSP,
                                       "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "no-referrer",
                                       "Cache-Control": "no-store"})


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def inbox_page(lang: Lang = None, accept_language: AcceptLanguage = None) -> HTMLResponse:
    return _shell("inbox", i18n.choose(accept_language, lang))


@router.get("/ui/patients/{patient}")
def patient_page(patient: str, lang: Lang = None, accept_language: AcceptLanguage = None
                 ) -> HTMLResponse:
    arg = patient if re.fullmatch(ID_PATTERN.strip("^$"), patient) else ""
    return _shell("patient", i18n.choose(accept_language, lang), arg)


@router.get("/ui/{page}")
def other_page(page: str, lang: Lang = None, accept_language: AcceptLanguage = None
               ) -> HTMLResponse:
    return _shell(page if page in PAGES else "inbox", i18n.choose(accept_language, lang))


def mount(app: FastAPI) -> None:
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(router)
