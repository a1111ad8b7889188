"""Passwords, bearer tokens and who is asking (OAuth2 password flow, RFC 6749 section 4.3).

Passwords are hashed with Argon2id (argon2-cffi, OWASP's first choice); tokens are HS256 JWTs
(PyJWT) that name the user and expire after ``TOKEN_TTL`` (15 min). A token carries no role
and no site: they are read from the database on every request, so removing a user or a site
takes effect at once instead of when the token expires.

A login also gets a refresh token (``cloud_api.refresh``): 256 random bits, kept server-side as
a SHA-256 only, exchanged for a new access token and a new refresh token until
``REFRESH_TTL`` (12 h, one shift) after the login.

The signing secret comes from ``VIGIE_API_SECRET`` or a file, generated on first start with
mode 0600. Every API process behind a load balancer must share it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloud_api.errors import ConfigError
from vigie.contract import now_utc

log = logging.getLogger(__name__)

TOKEN_TTL: Final = timedelta(minutes=15)
REFRESH_TTL: Final = timedelta(hours=12)  # one shift: then the password again
REFRESH_BYTES: Final = 32  # 256 bits (RFC 6749 section 10.10: not guessable)
SECRET_ENV: Final = "VIGIE_API_SECRET"
_ALGORITHM: Final = "HS256"
_MIN_SECRET_BYTES: Final = 32  # RFC 7518 section 3.2: HS256 keys of at least 256 bits
_hasher = PasswordHasher()


class Role(StrEnum):
    ADMIN = "admin"
    PHYSICIAN = "physician"
    NURSE = "nurse"


class AuthError(Exception):
    """The caller is not authenticated (bad credentials, bad or expired token): 401."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user. ``sites`` None means every site (a global admin)."""

    username: str
    role: Role
    sites: frozenset[str] | None

    def sees(self, site: str | None) -> bool:
        """May this user see data of ``site``? Site-less data is for global admins only."""
        return self.sites is None or (site is not None and site in self.sites)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def dummy_verify() -> None:
    """Spend a verification's time for an unknown user, so timing does not tell who exists."""
    verify_password(_DUMMY_HASH, "not the password")


_DUMMY_HASH: Final = hash_password(secrets.token_urlsafe(16))


def new_refresh_token() -> str:
    """An opaque refresh token: ``REFRESH_BYTES`` random bytes, URL-safe base64."""
    return secrets.token_urlsafe(REFRESH_BYTES)


def refresh_digest(token: str) -> str:
    """What is stored of a refresh token: its SHA-256 (the token has 256 bits of entropy, so
    a fast hash is enough; a stolen table gives nothing to present)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenIssuer:
    """Signs access tokens; also carries the refresh lifetime and the clock refresh tokens are
    issued and checked with (a test moves it instead of sleeping)."""

    secret: bytes
    ttl: timedelta = TOKEN_TTL
    refresh_ttl: timedelta = REFRESH_TTL
    clock: Callable[[], datetime] = now_utc
    # a spent refresh token presented again this soon, its successor never used: a lost
    # reply, answered again (cloud_api.refresh); 0 turns the tolerance off
    refresh_grace: timedelta = timedelta(seconds=30)

    def issue(self, username: str, now: datetime | None = None) -> str:
        at = now or self.clock()
        claims = {"sub": username, "iat": at, "exp": at + self.ttl}
        return jwt.encode(claims, self.secret, algorithm=_ALGORITHM)

    def subject(self, token: str) -> str:
        """The username of a valid, unexpired token; AuthError otherwise."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=[_ALGORITHM],
                                options={"require": ["sub", "exp", "iat"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired: ask /token/refresh (or /token) for a new one") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError("invalid token") from exc
        sub = claims["sub"]
        if not isinstance(sub, str):
            raise AuthError("invalid token")
        return sub


def load_secret(path: Path | None) -> bytes:
    """The signing secret: ``VIGIE_API_SECRET``, else ``path`` (created 0600 if absent)."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return _checked(from_env.encode(), SECRET_ENV)
    if path is None:
        log.warning("no API secret configured: tokens die with this process")
        return secrets.token_bytes(_MIN_SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _checked(path.read_bytes().strip(), str(path))
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")
    log.info("generated the API signing secret in %s", path)
    return _checked(path.read_bytes().strip(), str(path))


def _checked(secret: bytes, where: str) -> bytes:
    if len(secret) < _MIN_SECRET_BYTES:
        raise ConfigError(f"API secret in {where} is shorter than {_MIN_SECRET_BYTES} bytes")
    return secret


def default_secret_path(db_url: str) -> Path:
    """Beside the SQLite database when there is one, else ``./vigie-api-secret``."""
    prefix = "sqlite:///"
    if db_url.startswith(prefix) and db_url[len(prefix):] not in ("", ":memory:"):
        return Path(db_url[len(prefix):]).parent / "vigie-api-secret"
    return Path("vigie-api-secret")
