"""``POST /token``: OAuth2 password flow (RFC 6749 section 4.3), short-lived bearer tokens;
``POST /token/refresh``: a new access token for a refresh token, which rotates
(``cloud_api.refresh``); ``POST /logout``: the refresh tokens of this login (or all) revoked.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field, ValidationError

from cloud_api import accounts, audit, refresh
from cloud_api.context import ApiContext
from cloud_api.routes.deps import AUTH_ERRORS, BEARER, BODY_ERRORS, Ctx, current_principal
from cloud_api.security import Principal

router = APIRouter(tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str = Field(description="for POST /token/refresh; single use")
    refresh_expires_in: int = Field(description="seconds left before a new login is needed")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=refresh.MAX_TOKEN_CHARS)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=refresh.MAX_TOKEN_CHARS,
        description="end this login only; none: every login of the user")


class LogoutOut(BaseModel):
    revoked: int = Field(description="refresh tokens revoked")


_Body = TypeVar("_Body", bound=BaseModel)


def _either_body(model: type[BaseModel], required: bool) -> dict[str, Any]:
    """The OpenAPI request body of a route that takes a form or JSON (read by ``_read``)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": required, "content": {
        "application/json": {"schema": schema},
        "application/x-www-form-urlencoded": {"schema": schema}}}}


async def _read(request: Request, model: type[_Body]) -> _Body:
    """A form or JSON body, validated by ``model`` (an empty body is ``{}``)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if kind == "application/json" or kind.endswith("+json"):
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise HTTPException(400, "the body is not valid JSON") from exc
    else:
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


async def _refresh_body(request: Request) -> RefreshIn:
    return await _read(request, RefreshIn)


async def _logout_body(request: Request) -> LogoutIn:
    return await _read(request, LogoutIn)


def _tokens(ctx: ApiContext, issued: refresh.Issued, response: Response) -> TokenOut:
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 section 5.1
    left = issued.expires_at - ctx.tokens.clock()
    return TokenOut(access_token=ctx.tokens.issue(issued.username),
                    expires_in=int(ctx.tokens.ttl.total_seconds()),
                    refresh_token=issued.token,
                    refresh_expires_in=max(0, int(left.total_seconds())))


@router.post("/token", responses={401: {"description": "incorrect username or password"}})
def token(ctx: Ctx, form: Annotated[OAuth2PasswordRequestForm, Depends()],
          response: Response) -> TokenOut:
    """Exchange a username and password (form fields) for a bearer token (15 min) and a
    refresh token (valid until the end of the shift: 12 h after this login)."""
    note = audit.Note(form.username, "login", "/token")
    with ctx.sessions() as session:
        who = accounts.authenticate(session, form.username, form.password)
    if who is None:
        audit.write_apart(ctx.sessions, note.row("denied"))
        raise HTTPException(401, "incorrect username or password", headers=BEARER)
    with ctx.sessions.begin() as session:
        issued = refresh.open_family(session, who.username, ctx.tokens)
        note.detail["family"] = issued.family
        session.add(note.row("ok"))
    return _tokens(ctx, issued, response)


# documented by hand: FastAPI only documents the 422 of the bodies it reads itself
_INVALID_BODY: Final[dict[int | str, dict[str, Any]]] = {
    **BODY_ERRORS, 422: {"description": "a field is missing, too long or not text"}}
_REFRESH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    **_INVALID_BODY,
    401: {"description": "unknown, expired, revoked or already used refresh token, or a "
                         "user removed or disabled; an already used one revokes its session"}}


@router.post("/token/refresh", responses=_REFRESH_ERRORS,
             openapi_extra=_either_body(RefreshIn, required=True))
def token_refresh(ctx: Ctx, body: Annotated[RefreshIn, Depends(_refresh_body)],
                  response: Response) -> TokenOut:
    """Exchange a refresh token (form field or JSON ``refresh_token``) for a new access token
    and a new refresh token; the one presented is spent. Presenting a spent one again revokes
    every token of its login (someone else holds a copy)."""
    with ctx.sessions.begin() as session:  # a refusal's revocations commit with its row
        out = refresh.rotate(session, body.refresh_token, ctx.tokens)
        if isinstance(out, refresh.RefreshRefused):
            note = audit.Note(out.username or "-", "token.refresh", "/token/refresh",
                              detail={"reason": out.reason})
        else:
            note = audit.Note(out.username, "token.refresh", "/token/refresh",
                              detail={"replaced": "lost reply"} if out.replaced else {})
        if out.family:
            note.detail["family"] = out.family
        session.add(note.row("denied" if isinstance(out, refresh.RefreshRefused) else "ok"))
    if isinstance(out, refresh.RefreshRefused):
        raise HTTPException(401, str(out), headers=BEARER) from out
    return _tokens(ctx, out, response)


@router.post("/logout", responses={**AUTH_ERRORS, **_INVALID_BODY},
             openapi_extra=_either_body(LogoutIn, required=False))
def logout(ctx: Ctx, who: Annotated[Principal, Depends(current_principal)],
           body: Annotated[LogoutIn, Depends(_logout_body)]) -> LogoutOut:
    """Revoke the refresh tokens of the login that ``refresh_token`` (form field or JSON)
    belongs to, or with none every refresh token of the caller. Access tokens already issued
    stay valid until they expire (15 min at most): forget them."""
    note = audit.Note(who.username, "logout", "/logout",
                      detail={"scope": "everywhere" if body.refresh_token is None else "login"})
    with ctx.sessions.begin() as session:
        revoked = refresh.revoke(session, who.username, body.refresh_token)
        note.detail["revoked"] = revoked
        session.add(note.row("ok"))
    return LogoutOut(revoked=revoked)
