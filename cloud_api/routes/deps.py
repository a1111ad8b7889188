"""What the routes share: the context, who is asking, role checks, the audit wrapper."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from pydantic import AwareDatetime, BeforeValidator
from sqlalchemy.orm import Session

from cloud_api import accounts, audit
from cloud_api.context import ApiContext
from cloud_api.security import AuthError, Principal, Role

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"  # vigie.contract.check_id
STAFF: Final = (Role.ADMIN, Role.PHYSICIAN, Role.NURSE)
BEARER: Final = {"WWW-Authenticate": "Bearer"}  # RFC 6750 section 3



def _iso_text(value: object) -> object:
    """Refuse what pydantic would read as a Unix time (``0.5``): only ISO 8601 is documented."""
    if isinstance(value, str) and not re.match(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected an ISO 8601 date-time with a zone, e.g. 2026-05-01T08:00Z")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
_oauth2 = OAuth2PasswordBearer(tokenUrl="token")

# documented on every route that needs a token, and on those that take a JSON body
AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"description": "no token, or an invalid or expired one"},
    403: {"description": "the caller's role does not allow this"}}
BODY_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "the body is not valid JSON"}}

# outcome recorded in the audit log for a refused request, by HTTP status
_OUTCOMES: Final = {401: "denied", 403: "denied", 404: "not_found", 409: "refused",
                    422: "refused", 503: "error"}


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def current_principal(ctx: Ctx, token: Annotated[str, Depends(_oauth2)]) -> Principal:
    """The user named by a valid bearer token, with role and sites as they are now."""
    try:
        username = ctx.tokens.subject(token)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers=BEARER) from exc
    with ctx.sessions() as session:
        who = accounts.principal(session, username)
    if who is None:
        raise HTTPException(401, "user no longer exists", headers=BEARER)
    return who


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """Dependency: the principal, if its role is one of ``roles`` (403 otherwise)."""
    def check(who: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if who.role not in roles:
            raise HTTPException(403, f"requires role {' or '.join(roles)}")
        return who
    return check


Staff = Annotated[Principal, Depends(require(*STAFF))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def global_admin(who: Admin) -> Principal:
    if who.sites is not None:
        raise HTTPException(403, "requires an admin of every site")
    return who


GlobalAdmin = Annotated[Principal, Depends(global_admin)]


@contextmanager
def audited(ctx: ApiContext, note: audit.Note) -> Iterator[Session]:
    """A transaction whose success commits ``note`` with it; a failure is audited apart."""
    try:
        with ctx.sessions.begin() as session:
            yield session
            session.add(note.row("ok"))
    except HTTPException as exc:
        audit.write_apart(ctx.sessions, note.row(_OUTCOMES.get(exc.status_code, "refused")))
        raise
    except Exception:
        audit.write_apart(ctx.sessions, note.row("error"))
        raise


def not_found(what: str) -> HTTPException:
    """The same answer for 'absent' and 'of another site': existence must not leak."""
    return HTTPException(404, f"no {what}")
