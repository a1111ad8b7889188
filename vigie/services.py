"""Start the real services Vigie talks to (Mosquitto, InfluxDB 1.x, PostgreSQL) on private
loopback ports.

Each service keeps its data in a run directory of its own, answers before ``start()``
returns, and can be stopped and restarted on the same port and data (fault tests rely on it).
The binaries come from the Debian packages ``mosquitto``, ``influxdb`` and ``postgresql``,
which ``scripts/setup`` installs.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigie.pki import PkiPaths

log = logging.getLogger(__name__)

_LIVE: set[subprocess.Popen[bytes]] = set()


class ServiceError(RuntimeError):
    """A service binary is missing, did not start, or did not answer in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find(binary: str) -> str:
    found = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.access(p, os.X_OK)), None)
    if not found:
        raise ServiceError(f"{binary} not found: run scripts/setup (Debian package needed)")
    return found


def _kill_all() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


atexit.register(_kill_all)


class _Service:
    name = "service"

    def __init__(self, run_dir: Path, port: int | None = None) -> None:
        self.dir = run_dir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    # subclasses
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _popen_extra(self) -> dict[str, object]:
        return {}

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.out"

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT,  # type: ignore[call-overload]
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     **self._popen_extra())
        out.close()
        _LIVE.add(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if self._ready():
                log.debug("%s ready on port %d", self.name, self.port)
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not answer on port {self.port} in {timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, hard: bool = False, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        _LIVE.discard(proc)

    def restart(self, *, hard: bool = False) -> None:
        self.stop(hard=hard)
        self.start()


class Mosquitto(_Service):
    """Mosquitto with a persistent store, unlimited queues for offline persistent sessions.

    With ``secure`` (a PKI made by ``vigie.pki``) the only listener speaks TLS and wants a
    client certificate signed by the CA and not revoked; the certificate's common name is
    the username and the client id, and the ACL derived from the PKI confines each gateway
    to its own topics. Without it, a plain anonymous loopback listener (tests, demo).
    """

    name = "mosquitto"

    def __init__(self, run_dir: Path, port: int | None = None,
                 secure: PkiPaths | None = None) -> None:
        super().__init__(run_dir, port)
        self.secure = secure

    def _listener(self) -> list[str]:
        if self.secure is None:
            return [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        from vigie.pki import acl_text

        pki = self.secure
        acl = self.dir / "acl"
        acl.write_text(acl_text(pki))  # rebuilt at each start: new services, new rules
        return [f"listener {self.port} 127.0.0.1", f"cafile {pki.ca_cert}",
                f"certfile {pki.broker_cert}", f"keyfile {pki.broker_key}",
                f"crlfile {pki.crl}", "tls_version tlsv1.2", "require_certificate true",
                "use_identity_as_username true",
                # the client id is the identity too: no one takes over another's session
                "use_username_as_clientid true",
                "allow_anonymous false", f"acl_file {acl}"]

    def _command(self) -> list[str]:
        conf = self.dir / "mosquitto.conf"
        lines = [
            *self._listener(),
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 5",
            # An offline ingest worker must not lose messages queued for its session: the
            # default cap of 1000 would silently drop the rest.
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 100",
            "max_packet_size 16777216",
            f"log_dest file {self.dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot write here
        conf.write_text("\n".join(lines) + "\n")
        return [_find("mosquitto"), "-c", str(conf)]

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                return self.secure is None or self._tls_handshake(sock, self.secure)
        except OSError:
            return False

    @staticmethod
    def _tls_handshake(sock: socket.socket, pki: PkiPaths) -> bool:
        """The TLS listener is ready when it completes a handshake with a service identity."""
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        services = pki.services()
        if services:
            cred = pki.service(services[0])
            ctx.load_cert_chain(cred.cert, cred.key)
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.settimeout(0.5)
            return tls.version() is not None


class InfluxDB(_Service):
    """InfluxDB 1.x (Debian's package) with data, WAL and meta under the run directory."""

    name = "influxdb"

    def __init__(self, run_dir: Path, port: int | None = None) -> None:
        super().__init__(run_dir, port)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        conf = self.dir / "influxdb.conf"
        conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.dir}/meta"
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
""")
        return [_find("influxd"), "run", "-config", str(conf)]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                return int(resp.status) == 204
        except (OSError, urllib.error.URLError):
            return False


PG_SUPERUSER = "vigie"  # superuser of the private cluster (trust, loopback only)


def _pg_binary(name: str) -> str:
    """Debian keeps the server binaries per major version under /usr/lib/postgresql."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return found[-1]
    return _find(name)


class PostgreSQL(_Service):
    """PostgreSQL (Debian's package): a private cluster listening on loopback TCP only.

    ``initdb`` runs on first start. PostgreSQL refuses to run as root: as root (CI, tests) the
    cluster runs as the ``postgres`` system user the package creates, and since that user
    may not reach a root-owned run directory (pytest's are 0700), its data directory is then
    made under the system temporary directory and named in ``run_dir/postgresql/datadir``
    (``remove()`` deletes it). Any local client is trusted, as the superuser
    ``PG_SUPERUSER``: a development and test cluster, not a production one.

    ``fast`` turns off fsync and full-page writes: a crash of the machine (not of the
    process) may then corrupt the cluster, which tests and benchmarks do not mind.
    """

    name = "postgresql"

    def __init__(self, run_dir: Path, port: int | None = None, *, fast: bool = False) -> None:
        super().__init__(run_dir, port)
        self.fast = fast
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.data = self._data_dir()

    def url(self, database: str = "vigie") -> str:
        """SQLAlchemy URL of ``database`` on this cluster (psycopg 3)."""
        return f"postgresql+psycopg://{PG_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _data_dir(self) -> Path:
        if self._owner is None:
            return self.dir / "data"
        pointer = self.dir / "datadir"
        if pointer.exists() and Path(pointer.read_text().strip()).is_dir():
            return Path(pointer.read_text().strip())
        data = Path(tempfile.mkdtemp(prefix="vigie-postgresql-"))
        os.chown(data, self._owner.pw_uid, self._owner.pw_gid)
        pointer.write_text(f"{data}\n")
        return data

    def _as_owner(self) -> dict[str, object]:
        """Popen arguments running a PostgreSQL binary as the cluster's owner."""
        if self._owner is None:
            return {}
        return {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": self._owner.pw_dir, "USER": "postgres"}}

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        cmd = [_pg_binary("initdb"), "-D", str(self.data), "-U", PG_SUPERUSER,
               "--auth=trust", "--encoding=UTF8", "--locale=C"]
        if self.fast:
            cmd.append("--no-sync")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL, cwd="/", **self._as_owner())  # type: ignore[call-overload]
        if done.returncode != 0:
            raise ServiceError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _command(self) -> list[str]:
        self._initdb()
        settings = ["listen_addresses=127.0.0.1", f"port={self.port}",
                    "unix_socket_directories=", "max_connections=300",
                    "log_min_messages=warning", "log_min_error_statement=panic"]
        if self.fast:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        return [_pg_binary("postgres"), "-D", str(self.data),
                *(arg for setting in settings for arg in ("-c", setting))]

    def _popen_extra(self) -> dict[str, object]:
        return {**self._as_owner(), "cwd": "/"}

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_SUPERUSER,
                                 dbname="postgres", connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self, *, hard: bool = False, timeout: float = 20.0) -> None:
        """SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client)."""
        if not hard and self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        super().stop(hard=hard, timeout=timeout)

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_SUPERUSER,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (``template``: a copy of that one); its SQLAlchemy URL."""
        _check_identifier(name)
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            _check_identifier(template)
            sql += f' TEMPLATE "{template}"'
        self._admin(sql)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending the sessions still connected to it."""
        _check_identifier(name)
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def remove(self) -> None:
        """Stop, and delete a data directory made outside the run directory (as root)."""
        self.stop()
        if self._owner is not None:
            shutil.rmtree(self.data, ignore_errors=True)


def _check_identifier(name: str) -> None:
    if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise ValueError(f"not a plain database name: {name!r}")


def _secure_pki(run_dir: Path, secure: bool | PkiPaths) -> PkiPaths | None:
    if secure is False:
        return None
    if secure is not True:
        return secure
    from vigie.pki import PkiPaths, init_pki

    pki = PkiPaths(run_dir / "pki")
    return pki if pki.ca_cert.exists() else init_pki(pki.root)


class Services:
    """Mosquitto and InfluxDB together, as a context manager.

    ``secure=True`` starts the broker in the secure profile with a PKI kept in
    ``run_dir/pki`` (made on first use); ``secure=PkiPaths`` uses an existing one.
    """

    def __init__(self, run_dir: Path | None = None, secure: bool | PkiPaths = False) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vigie-run-")
            run_dir = Path(self._tmp.name)
        self.run_dir = run_dir
        self.pki = _secure_pki(run_dir, secure)
        self.mosquitto = Mosquitto(run_dir, secure=self.pki)
        self.influx = InfluxDB(run_dir)

    @property
    def mqtt(self) -> str:
        return f"127.0.0.1:{self.mosquitto.port}"

    def start(self) -> Services:
        self.mosquitto.start()
        self.influx.start()
        return self

    def stop(self) -> None:
        self.mosquitto.stop()
        self.influx.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Services:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def services_up(run_dir: Path | None) -> int:
    """``vigie services up``: start both, print where they listen, wait for Ctrl-C."""
    with Services(run_dir) as svc:
        print(f"mqtt     {svc.mqtt}", flush=True)
        print(f"influxdb {svc.influx.url}", flush=True)
        print(f"data     {svc.run_dir}", flush=True)
        stop = False

        def _on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _on_signal)
        try:
            while not stop and svc.mosquitto.running and svc.influx.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        print("stopping", file=sys.stderr)
    return 0
