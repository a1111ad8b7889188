"""``vigie users``: create and list API users straight in the relational store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from cloud_api import accounts
from cloud_api.db import make_engine, make_sessions

PASSWORD_ENV = "VIGIE_USER_PASSWORD"


def _password(password_file: Path | None) -> str:
    """From the file, else ``VIGIE_USER_PASSWORD``, else a prompt (twice, hidden)."""
    if password_file is not None:
        return password_file.read_text().rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise typer.BadParameter(f"no terminal to ask for the password: use --password-file "
                                 f"or {PASSWORD_ENV}")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def users_add_command(db_url: str, username: str, role: str, sites: list[str],
                      password_file: Path | None) -> int:
    password = _password(password_file)
    engine = make_engine(db_url)
    try:
        with make_sessions(engine).begin() as session:
            user = accounts.add_user(session, username, password, role, sites,
                                     create_sites=True)
    except accounts.AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    finally:
        engine.dispose()
    scope = ", ".join(user.sites) if user.sites else "every site"
    typer.echo(f"user {user.username} ({user.role}, {scope}) created", err=True)
    return 0


def users_list_command(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_sessions(engine)() as session:
            for u in accounts.list_users(session):
                typer.echo(json.dumps({"username": u.username, "role": u.role,
                                       "sites": list(u.sites)}))
    finally:
        engine.dispose()
    return 0


def users_disable_command(db_url: str, username: str, disable: bool) -> int:
    """Disable (or enable again) a login: refused at once, refresh tokens revoked."""
    engine = make_engine(db_url)
    try:
        with make_sessions(engine).begin() as session:
            changed = (accounts.disable_user(session, username, by="cli") if disable
                       else accounts.enable_user(session, username))
    except accounts.AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    finally:
        engine.dispose()
    state = "disabled" if disable else "enabled"
    typer.echo(f"user {username} {state}" if changed else f"user {username} already {state}",
               err=True)
    return 0
