"""Start the real services Vigie talks to (Mosquitto, InfluxDB 1.x) on private loopback ports.

Each service keeps its data in a run directory of its own, answers before ``start()``
returns, and can be stopped and restarted on the same port and data (fault tests rely on it).
The binaries come from the Debian packages ``mosquitto`` and ``influxdb``, which
``scripts/setup`` installs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
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

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.out"

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
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
