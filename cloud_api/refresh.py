"""Refresh tokens: a login lasts a shift, its access tokens 15 minutes (RFC 6749 section 6,
rotation and reuse detection as in the OAuth 2.0 Security BCP, RFC 9700 section 4.14.2).

A login (``POST /token``) opens a *family* and gets its first refresh token. Each
``POST /token/refresh`` revokes the token presented and hands out the next one of the same
family, which expires when the family does: ``TokenIssuer.refresh_ttl`` after the login, however
often it is refreshed, so a session never outlives a shift. A rotated token presented again
means two parties hold the chain (a copy was stolen, or a client replays): the whole family is
revoked, thief and nurse both lose it and the nurse logs in again.

A lost reply is not a theft: the Wi-Fi of a ward drops the answer to a refresh, the page tries
again with the token it still holds, already spent. Within ``TokenIssuer.refresh_grace`` (30 s)
of its last use, and while its successor has never been used, that token is answered again: the
unused successor is revoked (reason ``superseded``) and a new one issued. A superseded token
presented later forks the chain and counts as a reuse. The price: a copy replayed within the
grace gets tokens too, and is caught when the nurse's page next refreshes (within 15 minutes)
instead of at once. A refresh also needs the
user to exist and not be disabled (``accounts.principal``), else every token of the user is
revoked. Only the SHA-256 of a token is stored (``security.refresh_digest``).

Every refusal is a ``RefreshRefused`` (an ``AuthError``: 401) with a message for the client
and a short ``reason`` for the audit log; ``rotate`` returns it so that the revocations it
caused are committed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from cloud_api import accounts
from cloud_api.db import RefreshToken
from cloud_api.security import AuthError, TokenIssuer, new_refresh_token, refresh_digest

MAX_TOKEN_CHARS = 512  # what a request may carry; ours are 43


@dataclass(frozen=True, slots=True)
class Issued:
    """A refresh token handed out (the only time the token itself exists on the server)."""

    token: str
    username: str
    family: str
    expires_at: datetime
    replaced: bool = False  # answered again within the grace (a lost reply)


class RefreshRefused(AuthError):
    """No new tokens: ``reason`` is one of unknown, expired, reused, revoked, user."""

    def __init__(self, message: str, reason: str, username: str | None = None,
                 family: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.username = username
        self.family = family


def _add(session: Session, username: str, family: str, expires_at: datetime,
         now: datetime, *, replaced: bool = False) -> Issued:
    token = new_refresh_token()
    session.add(RefreshToken(token_hash=refresh_digest(token), username=username,
                             family=family, created_at=now, last_used_at=None,
                             expires_at=expires_at, revoked=False))
    session.flush()
    return Issued(token, username, family, expires_at, replaced)


def open_family(session: Session, username: str, issuer: TokenIssuer) -> Issued:
    """The first refresh token of a login, in the caller's transaction (which also forgets
    the user's expired ones: an expired session cannot be refreshed, reused or not)."""
    now = issuer.clock()
    session.execute(delete(RefreshToken).where(RefreshToken.username == username,
                                               RefreshToken.expires_at < now))
    return _add(session, username, secrets.token_hex(16), now + issuer.refresh_ttl, now)


def _revoke(session: Session, reason: str, *criteria: Any) -> int:
    result = session.execute(update(RefreshToken)
                             .where(RefreshToken.revoked.is_(False), *criteria)
                             .values(revoked=True, revoked_reason=reason))
    return int(cast(CursorResult[Any], result).rowcount)


def rotate(session: Session, token: str, issuer: TokenIssuer) -> Issued | RefreshRefused:
    """The next refresh token of ``token``'s family, or why not: the refusal is returned, not
    raised, so that the caller commits what it revoked (with its audit row) before answering."""
    now = issuer.clock()
    row = session.scalar(select(RefreshToken)
                         .where(RefreshToken.token_hash == refresh_digest(token)))
    if row is None:
        return RefreshRefused("invalid refresh token: log in again", "unknown")
    who, family = row.username, row.family
    if row.revoked and row.revoked_reason not in ("rotated", "superseded"):
        # logout, reuse, disabled: already dealt with
        return RefreshRefused("refresh token revoked: log in again", "revoked", who, family)
    if row.expires_at <= now:
        return RefreshRefused("refresh token expired: log in again", "expired", who, family)
    successor = _lost_reply(session, row, now, issuer) if row.revoked else None
    if row.revoked and successor is None:
        return _reused(session, who, family)
    if accounts.principal(session, who) is None:
        _revoke(session, "user", RefreshToken.username == who)
        return RefreshRefused("user no longer exists or is disabled", "user", who, family)
    if successor is not None:  # a lost reply: its unused successor gives way (compare-and-set)
        gone = _revoke(session, "superseded", RefreshToken.id == successor.id)
        row.last_used_at = now  # the grace runs from the latest answer
        if gone != 1:
            return _reused(session, who, family)
        return _add(session, who, family, row.expires_at, now, replaced=True)
    # compare-and-set: of two requests racing with one token, one wins, the other is a reuse
    won = session.execute(update(RefreshToken)
                          .where(RefreshToken.id == row.id, RefreshToken.revoked.is_(False))
                          .values(revoked=True, revoked_reason="rotated", last_used_at=now))
    if cast(CursorResult[Any], won).rowcount != 1:
        return _reused(session, who, family)
    return _add(session, who, family, row.expires_at, now)


def _lost_reply(session: Session, row: RefreshToken, now: datetime, issuer: TokenIssuer
                ) -> RefreshToken | None:
    """The never-used successor of ``row`` if ``row`` (spent by a rotation) is presented
    again within the grace: the answer that carried the successor was lost. None: a reuse."""
    if row.revoked_reason != "rotated" or row.last_used_at is None \
            or now - row.last_used_at > issuer.refresh_grace:
        return None
    return session.scalar(select(RefreshToken).where(
        RefreshToken.family == row.family, RefreshToken.revoked.is_(False),
        RefreshToken.last_used_at.is_(None), RefreshToken.created_at == row.last_used_at))


def _reused(session: Session, who: str, family: str) -> RefreshRefused:
    _revoke(session, "reuse", RefreshToken.family == family)
    return RefreshRefused("refresh token already used: this session is revoked, log in again",
                          "reused", who, family)


def revoke(session: Session, username: str, token: str | None = None) -> int:
    """Log out: revoke the family of ``token`` (if it is ``username``'s), or with no token
    every refresh token of ``username``. The number of tokens revoked."""
    if token is None:
        return _revoke(session, "logout", RefreshToken.username == username)
    family = session.scalar(select(RefreshToken.family).where(
        RefreshToken.token_hash == refresh_digest(token), RefreshToken.username == username))
    if family is None:
        return 0
    return _revoke(session, "logout", RefreshToken.family == family)
