"""Users and care sites: creation, listing, authentication, disabling (API and CLI).

Errors, grouped by what the caller does next:

    AccountError
    ├── AccountExists   the username or site id is taken: pick another
    ├── UnknownSite     a site named does not exist (yet): create it first
    └── AccountInvalid  bad role or id, weak password, staff without a site: fix the call
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.db import CareSite, DisabledUser, RefreshToken, User, UserSite
from cloud_api.security import Principal, Role, dummy_verify, hash_password, verify_password
from cloud_api.tenancy import ensure_site
from vigie.contract import ContractError, check_id, now_utc

MIN_PASSWORD = 12  # NIST SP 800-63B section 3.1.1.2 asks for at least 8; we ask a little more


class AccountError(Exception):
    """Root of the account errors."""


class AccountExists(AccountError):
    pass


class AccountInvalid(AccountError):
    pass


class UnknownSite(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class UserView:
    username: str
    role: str
    sites: tuple[str, ...]


def _sites_of(session: Session, username: str) -> tuple[str, ...]:
    return tuple(session.scalars(select(UserSite.site_id).where(UserSite.username == username)
                                 .order_by(UserSite.site_id)))


def principal(session: Session, username: str) -> Principal | None:
    """The principal of an existing, enabled user (role and sites as they are now)."""
    user = session.get(User, username)
    if user is None or session.get(DisabledUser, username) is not None:
        return None
    sites = _sites_of(session, username)
    role = Role(user.role)
    return Principal(username, role, None if role is Role.ADMIN and not sites
                     else frozenset(sites))


def authenticate(session: Session, username: str, password: str) -> Principal | None:
    user = session.get(User, username)
    if user is None:
        dummy_verify()
        return None
    if not verify_password(user.password_hash, password):
        return None
    return principal(session, username)


def disable_user(session: Session, username: str, by: str) -> bool:
    """Refuse the user's logins, refreshes and tokens from now on (inside the caller's
    transaction) and revoke its refresh tokens. False if already disabled."""
    if session.get(User, username) is None:
        raise AccountInvalid(f"no user {username!r}")
    session.execute(update(RefreshToken)
                    .where(RefreshToken.username == username, RefreshToken.revoked.is_(False))
                    .values(revoked=True, revoked_reason="disabled"))
    if session.get(DisabledUser, username) is not None:
        return False
    session.add(DisabledUser(username=username, disabled_at=now_utc(), disabled_by=by[:64]))
    session.flush()
    return True


def enable_user(session: Session, username: str) -> bool:
    """Undo ``disable_user`` (the user logs in again; revoked tokens stay revoked)."""
    row = session.get(DisabledUser, username)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def _check_new_user(session: Session, username: str, password: str, role: str,
                    sites: tuple[str, ...], create_sites: bool) -> Role:
    try:
        check_id(username, "user")
        for s in sites:
            check_id(s, "site")
    except ContractError as exc:
        raise AccountInvalid(str(exc)) from exc
    if role not in tuple(Role):
        raise AccountInvalid(f"role must be one of {', '.join(Role)}, not {role!r}")
    if Role(role) is not Role.ADMIN and not sites:
        raise AccountInvalid(f"a {role} needs at least one site")
    if len(password) < MIN_PASSWORD:
        raise AccountInvalid(f"password shorter than {MIN_PASSWORD} characters")
    if session.get(User, username) is not None:
        raise AccountExists(f"user {username!r} exists")
    missing = [s for s in sites if session.get(CareSite, s) is None]
    if missing and not create_sites:
        raise UnknownSite(f"unknown site(s): {', '.join(missing)}; create them first")
    return Role(role)


def add_user(session: Session, username: str, password: str, role: str,
             sites: Iterable[str] = (), *, create_sites: bool = False) -> UserView:
    """Create a user inside the caller's transaction (an admin with no site is global)."""
    wanted = tuple(sorted(set(sites)))
    checked = _check_new_user(session, username, password, role, wanted, create_sites)
    for s in wanted:
        ensure_site(session, s)
    session.add(User(username=username, password_hash=hash_password(password),
                     role=str(checked), created_at=now_utc()))
    session.flush()
    session.add_all(UserSite(username=username, site_id=s) for s in wanted)
    session.flush()
    return UserView(username, str(checked), wanted)


def list_users(session: Session, sites: frozenset[str] | None = None) -> list[UserView]:
    """Every user, or (``sites`` given) the users sharing one of those sites."""
    out = []
    for user in session.scalars(select(User).order_by(User.username)):
        mine = _sites_of(session, user.username)
        if sites is None or sites & set(mine):
            out.append(UserView(user.username, user.role, mine))
    return out


def add_site(session: Session, site_id: str, name: str) -> CareSite:
    try:
        check_id(site_id, "site")
    except ContractError as exc:
        raise AccountInvalid(str(exc)) from exc
    if session.get(CareSite, site_id) is not None:
        raise AccountExists(f"site {site_id!r} exists")
    return ensure_site(session, site_id, name)
