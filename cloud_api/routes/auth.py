"""``POST /token``: OAuth2 password flow (RFC 6749 section 4.3), short-lived bearer tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from cloud_api import accounts, audit
from cloud_api.routes.deps import BEARER, Ctx

router = APIRouter(tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/token", responses={401: {"description": "incorrect username or password"}})
def token(ctx: Ctx, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    """Exchange a username and password (form fields) for a bearer token."""
    note = audit.Note(form.username, "login", "/token")
    with ctx.sessions() as session:
        who = accounts.authenticate(session, form.username, form.password)
    if who is None:
        audit.write_apart(ctx.sessions, note.row("denied"))
        raise HTTPException(401, "incorrect username or password", headers=BEARER)
    audit.write_apart(ctx.sessions, note.row("ok"))
    return TokenOut(access_token=ctx.tokens.issue(who.username),
                    expires_in=int(ctx.tokens.ttl.total_seconds()))
