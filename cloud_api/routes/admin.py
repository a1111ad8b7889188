"""Administration: users, care sites, the audit log (admins only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from cloud_api import accounts, audit
from cloud_api.routes.deps import (
    AUTH_ERRORS,
    BODY_ERRORS,
    ID_PATTERN,
    Admin,
    Ctx,
    GlobalAdmin,
    IsoTime,
    audited,
)
from cloud_api.security import Role
from vigie.contract import iso

router = APIRouter(tags=["admin"], responses=AUTH_ERRORS)


SiteId = Annotated[str, Field(pattern=ID_PATTERN)]


class _NewUser(BaseModel):
    username: str = Field(pattern=ID_PATTERN, max_length=64)
    password: str = Field(min_length=accounts.MIN_PASSWORD, max_length=1024)


class AdminIn(_NewUser):
    role: Literal[Role.ADMIN]
    sites: list[SiteId] = Field(default=[], max_length=100,
                                description="none: an admin of every site")


class StaffIn(_NewUser):
    role: Literal[Role.PHYSICIAN, Role.NURSE]
    sites: list[SiteId] = Field(min_length=1, max_length=100)


UserIn = Annotated[AdminIn | StaffIn, Field(discriminator="role")]


class UserOut(BaseModel):
    username: str
    role: str
    sites: list[str]


class SiteIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=256)


class SiteOut(BaseModel):
    id: str
    name: str


def _user_out(u: accounts.UserView) -> UserOut:
    return UserOut(username=u.username, role=u.role, sites=list(u.sites))


@router.post("/users", status_code=201,
             responses={**BODY_ERRORS, 403: {"description": "outside the admin's sites"},
                        409: {"description": "username taken, or a site does not exist"}})
def add_user(ctx: Ctx, who: Admin, body: UserIn) -> UserOut:
    """Create a user. A site-scoped admin creates users of its own sites only."""
    if who.sites is not None and not (body.sites and set(body.sites) <= who.sites):
        raise HTTPException(403, "a site admin creates users of its own sites only")
    note = audit.Note(who.username, "user.create", f"/users/{body.username}",
                      detail={"role": str(body.role), "sites": sorted(body.sites)})
    with audited(ctx, note) as session:
        try:
            return _user_out(accounts.add_user(session, body.username, body.password,
                                               body.role, body.sites))
        except (accounts.AccountExists, accounts.UnknownSite) as exc:
            raise HTTPException(409, str(exc)) from exc
        except accounts.AccountInvalid as exc:
            raise HTTPException(422, str(exc)) from exc


@router.get("/users")
def list_users(ctx: Ctx, who: Admin) -> list[UserOut]:
    """Users (a site admin sees the users of its sites)."""
    with ctx.sessions() as session:
        return [_user_out(u) for u in accounts.list_users(session, who.sites)]


@router.post("/sites", status_code=201,
             responses={**BODY_ERRORS, 409: {"description": "site id taken"}})
def add_site(ctx: Ctx, who: GlobalAdmin, body: SiteIn) -> SiteOut:
    """Create a care site (admins of every site only)."""
    note = audit.Note(who.username, "site.create", f"/sites/{body.id}", site=body.id)
    with audited(ctx, note) as session:
        try:
            site = accounts.add_site(session, body.id, body.name)
        except accounts.AccountExists as exc:
            raise HTTPException(409, str(exc)) from exc
        except accounts.AccountInvalid as exc:
            raise HTTPException(422, str(exc)) from exc
        return SiteOut(id=site.id, name=site.name)


@router.get("/audit")
def audit_log(ctx: Ctx, who: Admin, username: str | None = None,
              patient: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
              since: IsoTime | None = None,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[dict[str, Any]]:
    """Audit rows, newest first (a site admin sees the rows about its sites)."""
    with ctx.sessions() as session:
        rows = audit.entries(session, who.sites, username=username, patient=patient,
                             since=since, limit=limit)
        return [{"id": r.id, "at": iso(r.at), "username": r.username, "action": r.action,
                 "resource": r.resource, "patient": r.patient_id, "site": r.site_id,
                 "outcome": r.outcome, "detail": r.detail} for r in rows]
