"""HTTP API for clinicians and operators (FastAPI; OpenAPI docs at ``/docs``).

Every route but ``/health``, ``/ready``, ``/metrics``, ``/token``, ``/token/refresh`` and the
docs needs a bearer token from ``POST /token`` (OAuth2 password flow, ``cloud_api.security``).
Roles: nurses and physicians read the observations and alerts of their care sites and
acknowledge alerts; admins also manage users and sites, read quarantine and the audit log.
Everything is filtered by the caller's sites (``cloud_api.tenancy``); patient data of another
site answers 404, as if absent. Every read and change of patient data leaves an audit row
(``cloud_api.audit``).

Clinicians' web pages (``/ui/...``, ``cloud_api.web``) are served by the same app; they hold
no data themselves and call these routes with the same bearer token.

Routes live in ``cloud_api.routes``, one module per resource family; add a new one there and
include its router below (``tests/cloud_api/test_tenancy.py`` fails until the new paths are
classified for tenancy).
"""

from __future__ import annotations

from fastapi import FastAPI

from cloud_api.context import ApiContext
from cloud_api.metrics import make_registry
from cloud_api.routes import (
    admin,
    alerts,
    attribution,
    auth,
    fhir,
    inbox,
    operations,
    patients,
    registry,
    trends,
)
from cloud_api.web import pages

__all__ = ["ApiContext", "create_app"]


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="Vigie", version="0.2.0",
                  description="Remote monitoring: observations, alerts, gateways, quarantine. "
                              "Authenticate with POST /token (OAuth2 password flow).")
    app.state.ctx = ctx
    app.state.metrics = make_registry(ctx)  # this app's own, read by GET /metrics
    for module in (auth, operations, registry, patients, trends, attribution, inbox, alerts,
                   fhir, admin):
        app.include_router(module.router)
    pages.mount(app)
    return app
