"""Shared fixtures: the real services and the real processes of the chain.

Every integration test gets its own Mosquitto and InfluxDB (they start in a fraction of a
second), so restarts and outages in one test cannot leak into another.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings

from cloud_api import accounts
from cloud_api.client import PasswordAuth
from cloud_api.db import make_engine, make_sessions
from cloud_api.errors import CloudError
from cloud_api.influx import InfluxV1
from cloud_api.queries import stored_ids
from tests import dbkit
from tests.dbkit import database_url
from vigie.services import Services, free_port

VIGIE = [sys.executable, "-m", "vigie"]
ADMIN, ADMIN_PASSWORD = "it-admin", "integration tests only"


def add_user(db_url: str, username: str, password: str, role: str, *sites: str) -> None:
    """Create an API user straight in the cloud's relational store (as ``vigie users add``)."""
    engine = make_engine(db_url)
    try:
        with make_sessions(engine).begin() as session:
            accounts.add_user(session, username, password, role, sites, create_sites=True)
    finally:  # also when the user exists (a second cloud on one database)
        engine.dispose()


def register(db_url: str, gateway: str, *patients: str, site: str = "site-1") -> None:
    """What a care team does before a gateway's readings are accepted (issue 11): the site,
    the gateway registered to it and its patients, straight in the relational store (as the
    pages and ``POST /sites``, ``/gateways``, ``/patients`` would)."""
    from cloud_api.tenancy import register_site

    register_site(db_url, site, [gateway], patients)


def query_db(db_url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of ``sql`` on the cloud's relational store (SQLite or PostgreSQL), as tuples."""
    from sqlalchemy import text

    engine = make_engine(db_url, migrate=False)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(autouse=True)
def _test_databases() -> Iterator[None]:
    """The relational databases a test made are dropped after it (``tests.dbkit``)."""
    before = dbkit.made()
    yield
    dbkit.drop_test_databases(keep=before)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    dbkit.stop_server()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    with Services(tmp_path / "run") as svc:
        yield svc


def _ingest_tls_args(svc: Services) -> list[str]:
    """Secure profile: the ingest worker connects with its own certificate."""
    from vigie.pki import INGEST_IDENTITY

    assert svc.pki is not None
    cred = svc.pki.service(INGEST_IDENTITY)
    return ["--mqtt-ca", str(cred.ca), "--mqtt-cert", str(cred.cert), "--mqtt-key", str(cred.key)]


class _Child:
    """A real child process of a test: killed with SIGKILL, or stopped with SIGTERM."""

    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Cloud(_Child):
    """``vigie cloud run`` as a real process."""

    def __init__(self, svc: Services, workdir: Path, database: str = "vigie",
                 db_url: str | None = None) -> None:
        """``db_url``: the relational store (default: the test backend's, by ``workdir``)."""
        self.svc = svc
        self.workdir = workdir
        self.database = database
        self.api_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.db_url = db_url or database_url(workdir)
        self.username = ADMIN  # a global admin: the API needs a token (issue 6)
        with contextlib.suppress(accounts.AccountExists):  # a second Cloud on the same db
            add_user(self.db_url, ADMIN, ADMIN_PASSWORD, "admin")
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10,
                                auth=PasswordAuth(ADMIN, ADMIN_PASSWORD))
        self.store = InfluxV1(svc.influx.url, database)
        self.extra_args: list[str] = [] if svc.pki is None else _ingest_tls_args(svc)

    def start(self, *, standby: bool = False) -> Cloud:
        """Start and wait until the ingest is subscribed (``standby``: until the API
        answers that this process stands by for another's ingest lock)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "cloud.log").open("ab")
        self.proc = subprocess.Popen(
            [*VIGIE, "cloud", "run", "--mqtt", self.svc.mqtt, "--influx", self.svc.influx.url,
             "--database", self.database, "--db-url", self.db_url, "--api-port",
             str(self.api_port),
             *self.extra_args], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        if standby:
            wait_for(lambda: self.leadership() == "standby", 30, "standing by")
        else:
            wait_for(self._subscribed, 30, "ingest subscribed")
        return self

    def leadership(self) -> str | None:
        """``active`` or ``standby`` on PostgreSQL (``cloud_api.leadership``), else None."""
        try:
            return self.api.get("/health").json()["ingest"].get("leadership")  # type: ignore[no-any-return]
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def _subscribed(self) -> bool:
        try:
            return bool(self.api.get("/health").json()["ingest"]["subscribed"])
        except (httpx.HTTPError, KeyError, ValueError):
            return False


    def register(self, gateway: str, *patients: str, site: str = "site-1") -> Cloud:
        """Register ``gateway`` and ``patients`` at ``site`` (see ``register``)."""
        register(self.db_url, gateway, *patients, site=site)
        return self

    def close(self) -> None:
        self.api.close()
        self.store.close()

    def ids(self) -> list[str]:
        try:
            return stored_ids(self.store)
        except CloudError:  # InfluxDB may be down on purpose in a test
            return []

    def log(self) -> str:
        return (self.workdir / "cloud.log").read_text(errors="replace")


@pytest.fixture
def cloud(services: Services, tmp_path: Path) -> Iterator[Cloud]:
    c = Cloud(services, tmp_path).start()
    yield c
    c.stop()
    c.close()


def write_replay(path: Path, n: int, devices: int = 3, start_day: int = 1,
                 value: Callable[[int], float] | None = None) -> None:
    """n glucose readings spread over ``devices`` devices, each with a distinct device time."""
    with path.open("w") as f:
        for i in range(n):
            minutes = i * 7
            day, rest = divmod(minutes, 24 * 60)
            t = f"2026-10-{start_day + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:{i % 60:02d}"
            f.write(json.dumps({"device": f"dev-{i % devices}", "kind": "glucose",
                                "value": value(i) if value else 100 + i % 50,
                                "unit": "mg/dL", "time": t, "seq": i}) + "\n")


class GatewayProc(_Child):
    def __init__(self, workdir: Path, svc: Services, gateway_id: str, replay: Path,
                 rate: float = 0.0, capacity: int = 100_000, exit_when_done: bool = True,
                 patients: dict[str, str] | None = None, outbox: str = "outbox.sqlite3",
                 reserve_bytes: int = 1 << 20, registry: str | None = None) -> None:
        """``registry``: the database URL of the cloud this gateway sends to; the gateway and
        its patients are registered there at ``start`` (None: the test does it, or wants
        them unregistered)."""
        self.workdir = workdir
        self.gateway_id = gateway_id
        self.patients = sorted(set((patients or {}).values()))
        self.registry = registry
        workdir.mkdir(parents=True, exist_ok=True)
        devices = "".join(f'[[devices]]\nid = "{d}"\npatient = "{p}"\ntz = "Europe/Paris"\n'
                          for d, p in (patients or {}).items())
        self.config = workdir / "gateway.toml"
        self.config.write_text(f"""
[gateway]
id = "{gateway_id}"
site = "site-1"
outbox = "{outbox}"
outbox_capacity = {capacity}
outbox_reserve_bytes = {reserve_bytes}
exit_when_done = {'true' if exit_when_done else 'false'}
drain_timeout_s = 2
[mqtt]
host = "127.0.0.1"
port = {svc.mosquitto.port}
batch_size = 50
keepalive = 2
{devices}
[[sources]]
type = "replay"
name = "replay"
path = "{replay}"
rate = {rate}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProc:
        if self.registry is not None:
            register(self.registry, self.gateway_id, *self.patients)
        log = (self.workdir / "gateway.log").open("ab")
        self.proc = subprocess.Popen([*VIGIE, "gateway", "run", "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def wait(self, timeout: float = 60) -> int:
        """The exit status; on a timeout the test fails with every thread's stack (the
        gateway dumps them on SIGUSR1) and the end of the log, not a bare TimeoutExpired."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            pytest.fail(f"gateway still running after {timeout:.0f} s; end of its log:\n"
                        + self.log()[-12_000:])

    def log(self) -> str:
        return (self.workdir / "gateway.log").read_text(errors="replace")


@pytest.fixture
def gateway_factory(tmp_path: Path, services: Services, request: pytest.FixtureRequest
                    ) -> Iterator[Callable[..., GatewayProc]]:
    """Gateways of the test; in a test with the ``cloud`` fixture, registered to site-1 of
    that cloud with their patients when started, as a care team would (``registry=None``
    to leave one unregistered)."""
    made: list[GatewayProc] = []
    db_url = request.getfixturevalue("cloud").db_url if "cloud" in request.fixturenames \
        else None

    def make(gateway_id: str, replay: Path, **kw: Any) -> GatewayProc:
        kw.setdefault("registry", db_url)
        g = GatewayProc(tmp_path / gateway_id, services, gateway_id, replay, **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


os.environ.setdefault("VIGIE_LOG_LEVEL", "INFO")

# CI must be deterministic: the same examples every run (a developer's runs stay random and
# keep finding new cases; a failure found there is replayed from .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
