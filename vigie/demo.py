"""``vigie demo``: the whole chain on one machine, with simulated homes and an EHPAD.

Starts Mosquitto and InfluxDB (private ports, temporary data), the cloud side (ingest, rules,
API) and one gateway process per simulated site, each with simulated patients measured in
accelerated time. The EHPAD (the last site, when there are several) also has a shared
point-of-care analyzer on a serial line: an ASTM simulator on a pseudo-terminal, run by this
process, sends a result for a random resident every few real seconds (now and then for a
patient id the gateway does not know: stored unattributed), and the EHPAD gateway reads it
through a ``serial`` source exactly as it would read ``/dev/ttyUSB0``. Shows live progress; on
exit stops the gateways (they drain their outbox), waits for the cloud to store what they
sent, and reports what was sent, stored, lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cloud_api import accounts
from cloud_api.client import PasswordAuth
from cloud_api.db import make_engine, make_sessions
from cloud_api.errors import CloudError
from cloud_api.influx import InfluxV1
from cloud_api.queries import stored_ids
from firmware_sim.serial import PtyDevice, start_ward_analyzer
from vigie.services import Services, free_port

if TYPE_CHECKING:
    from vigie.pki import PkiPaths

VIGIE = [sys.executable, "-m", "vigie"]
POC_INTERVAL_S = 3.0  # real seconds between two results of the EHPAD's analyzer
POC_UNKNOWN_SHARE = 0.15  # share of results keyed with a patient id the gateway does not know


@dataclass
class DemoOptions:
    headless: bool = False
    duration: float | None = None
    gateways: int = 3
    patients: int = 4
    speed: float = 7200.0
    api_port: int = 0
    seed: int = 7
    lookback_days: float = 3.0  # simulated history replayed at ``speed`` before going live
    live_interval_s: float = 3.0  # then each patient measures every this many seconds
    secure: bool = False  # secure transport profile: TLS, a certificate per gateway, ACLs


@dataclass
class SiteProc:
    gateway_id: str
    site: str
    dir: Path
    proc: subprocess.Popen[bytes]
    patients: int

    def counts(self) -> tuple[int, int]:
        """(readings taken, readings still in the outbox)."""
        try:
            with sqlite3.connect(f"file:{self.dir / 'outbox.sqlite3'}?mode=ro", uri=True,
                                 timeout=1) as db:
                taken = db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
                depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                return int(taken), int(depth)
        except sqlite3.Error:
            return 0, 0

    def ids(self) -> set[str]:
        with sqlite3.connect(self.dir / "outbox.sqlite3") as db:
            return {str(r[0]) for r in db.execute("SELECT id FROM seen")}


def _is_ehpad(opts: DemoOptions, index: int) -> bool:
    return index == opts.gateways - 1 and opts.gateways > 1


def _demo_logins(opts: DemoOptions, db_url: str) -> list[tuple[str, str, str]]:
    """(username, random password, scope): an admin of every site and a nurse of the EHPAD."""
    site = "ehpad-1" if opts.gateways > 1 else "home-1"
    logins = [("demo-admin", secrets.token_urlsafe(12), ""),
              ("demo-nurse", secrets.token_urlsafe(12), site)]
    engine = make_engine(db_url)
    with make_sessions(engine).begin() as session:
        for username, password, scope in logins:
            accounts.add_user(session, username, password, "nurse" if scope else "admin",
                              [scope] if scope else [], create_sites=True)
    engine.dispose()
    return logins


def _residents(opts: DemoOptions, index: int) -> dict[str, str]:
    """ASTM patient id keyed in at the EHPAD's analyzer -> Vigie patient id of the resident."""
    return {f"EH{index + 1:02d}{p + 1:02d}": f"p-{index + 1:02d}{p + 1:02d}"
            for p in range(opts.patients * 2)}


def _poc_config(opts: DemoOptions, index: int, port: str) -> tuple[str, str]:
    """([[devices]] block, [[sources]] block) of the EHPAD's shared serial POC analyzer."""
    refs = ", ".join(f'"{ref}" = "{pid}"' for ref, pid in _residents(opts, index).items())
    device = f"poc-{index + 1:02d}"
    return (f'[[devices]]\nid = "{device}"\npatients = {{ {refs} }}\ntz = "Europe/Paris"\n',
            f'[[sources]]\ntype = "serial"\nname = "poc"\nport = "{port}"\n'
            f'family = "astm-poc"\ndevice = "{device}"\nbaudrate = 9600\n')


def _tls_config(pki: PkiPaths | None, gateway_id: str) -> str:
    """[mqtt] lines of the secure profile: the CA and this gateway's own credential."""
    if pki is None:
        return ""
    cred = pki.gateway(gateway_id)
    return f'tls_ca = "{cred.ca}"\ntls_cert = "{cred.cert}"\ntls_key = "{cred.key}"\n'


def _toml(value: Any) -> str:
    """A TOML value for the simple dicts/lists/scalars the BLE simulator describes."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _ble_config(described: dict[str, Any]) -> str:
    """[[devices]] and [[sources]] blocks for the devices of a BLE simulator."""
    blocks = ["[[devices]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in d.items())
              for d in described["devices"]]
    blocks.append("[[sources]]\n" + "".join(f"{k} = {_toml(v)}\n"
                                           for k, v in described["source"].items()))
    return "\n".join(blocks)


def _site_config(opts: DemoOptions, index: int, mqtt_port: int, workdir: Path,
                 poc_port: str | None = None, pki: PkiPaths | None = None,
                 ble: str = "") -> tuple[str, str, int]:
    ehpad = _is_ehpad(opts, index)
    site = "ehpad-1" if ehpad else f"home-{index + 1}"
    gateway_id = f"gw-{site}"
    count = opts.patients * 2 if ehpad else opts.patients
    devices, patients = [], []
    for p in range(count):
        pid = f"p-{index + 1:02d}{p + 1:02d}"
        hf = p % 2 == 0
        device = f"{'scale' if hf else 'gluco'}-{index + 1:02d}{p + 1:02d}"
        unit = ("[lb_av]" if p % 4 == 2 else "") if hf else ("mmol/L" if p % 4 == 1 else "")
        offset = [0, 95, -40, 3600][p % 4]  # device clocks are rarely right
        devices.append(f'[[devices]]\nid = "{device}"\npatient = "{pid}"\n'
                       f'clock_offset_s = {offset}\ntz = "Europe/Paris"\n')
        patients.append(f'{{ patient = "{pid}", device = "{device}", profile = '
                        f'"{"heart_failure" if hf else "diabetes"}", clock_offset_s = {offset},'
                        f' unit = "{unit}" }}')
    poc_device, poc_source = _poc_config(opts, index, poc_port) if poc_port else ("", "")
    (workdir / "gateway.toml").write_text(f"""[gateway]
id = "{gateway_id}"
site = "{site}"
outbox = "outbox.sqlite3"
drain_timeout_s = 5
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
heartbeat_s = 5
{_tls_config(pki, gateway_id)}{''.join(devices)}{poc_device}
[[sources]]
type = "sim"
name = "sim"
seed = {opts.seed}
speed = {opts.speed}
lookback_days = {opts.lookback_days}
live_interval_s = {opts.live_interval_s}
patients = [{', '.join(patients)}]
{poc_source}
{ble}""")
    return gateway_id, site, count


class Demo:
    def __init__(self, opts: DemoOptions, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.svc = Services(workdir / "services", secure=opts.secure)
        self.api_port = opts.api_port or free_port()
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10)
        self.cloud: subprocess.Popen[bytes] | None = None
        self.sites: list[SiteProc] = []
        self.analyzers: list[PtyDevice] = []
        self.ble_sims: list[subprocess.Popen[bytes]] = []
        self.store: InfluxV1 | None = None
        self.console = Console(stderr=True)

    def _log(self, name: str) -> Any:
        return (self.workdir / f"{name}.log").open("ab")

    def start(self) -> None:
        self.console.print(f"[bold]Vigie demo[/] in {self.workdir}")
        self.svc.start()
        self.store = InfluxV1(self.svc.influx.url, "vigie")
        self.console.print(f"  MQTT broker   {self.svc.mqtt}" + (
            "  (TLS only, a certificate per gateway)" if self.svc.pki else ""))
        if self.svc.pki is not None:
            self.console.print(f"  PKI           {self.svc.pki.root}")
        self.console.print(f"  InfluxDB      {self.svc.influx.url}  (database 'vigie')")
        logins = _demo_logins(self.opts, f"sqlite:///{self.workdir / 'cloud.sqlite3'}")
        self.api.auth = PasswordAuth(*logins[0][:2])  # the summary reads admin routes
        with self._log("cloud") as log:
            self.cloud = subprocess.Popen(
                [*VIGIE, "cloud", "run", "--mqtt", self.svc.mqtt, "--influx",
                 self.svc.influx.url, "--db-url", f"sqlite:///{self.workdir / 'cloud.sqlite3'}",
                 "--api-port", str(self.api_port), *self._cloud_tls()], stdout=log,
                stderr=subprocess.STDOUT)
        self._wait_ingest()
        self._register_cohort()
        self.console.print(f"  web inbox     http://127.0.0.1:{self.api_port}/ui/")
        self.console.print(f"  API           http://127.0.0.1:{self.api_port}/docs")
        for username, password, scope in logins:
            self.console.print(f"  login         {username} / {password}  "
                               f"({scope or 'admin, every site'})")
        for i in range(self.opts.gateways):
            gdir = self.workdir / f"gateway-{i + 1}"
            gdir.mkdir(parents=True, exist_ok=True)
            poc = self._start_analyzer(i) if _is_ehpad(self.opts, i) else None
            ble = self._start_ble(f"p-{i + 1:02d}02") if i == 0 else None
            gid, site, n = _site_config(self.opts, i, self.svc.mosquitto.port, gdir,
                                        poc.path if poc else None, self.svc.pki,
                                        _ble_config(ble) if ble else "")
            if self.svc.pki is not None:
                from vigie.pki import issue_gateway

                issue_gateway(self.svc.pki, gid)
            with self._log(gid) as log:
                proc = subprocess.Popen([*VIGIE, "gateway", "run", "--config",
                                         str(gdir / "gateway.toml")], stdout=log,
                                        stderr=subprocess.STDOUT)
            self.sites.append(SiteProc(gid, site, gdir, proc, n))
            self.console.print(f"  gateway       {gid} ({site}, {n} patients)")
            if poc is not None:
                self.console.print(f"  POC analyzer  {poc.path} (serial ASTM, shared) -> {gid}")
            if ble is not None:
                self.console.print(f"  BLE devices   glucometer + BP monitor on {ble['transport']}"
                                   f" (bumble, via bleak) -> {gid}")
        self.console.print(f"  logs          {self.workdir}/*.log")

    def _register_cohort(self) -> None:
        """Sites, gateways and patients with their clinical profile, through the API as the
        admin, so the pages show the cohort as a care team would have registered it."""
        for i in range(self.opts.gateways):
            site, count = ("ehpad-1", self.opts.patients * 2) if _is_ehpad(self.opts, i) \
                else (f"home-{i + 1}", self.opts.patients)
            self.api.post("/sites", json={"id": site, "name": site})  # 409 when it exists
            # readings of a gateway not registered to its site are quarantined (issue 11)
            self.api.post("/gateways", json={"id": f"gw-{site}", "site": site})
            for p in range(count):  # the same cohort as _site_config
                self.api.post("/patients", json={
                    "id": f"p-{i + 1:02d}{p + 1:02d}", "site": site,
                    "profile": ["heart_failure" if p % 2 == 0 else "diabetes"],
                    "age_group": "80-89" if site.startswith("ehpad") else "70-79",
                    "settings": {"resident": site.startswith("ehpad")}})

    def _cloud_tls(self) -> list[str]:
        if self.svc.pki is None:
            return []
        from vigie.pki import INGEST_IDENTITY

        cred = self.svc.pki.service(INGEST_IDENTITY)
        return ["--mqtt-ca", str(cred.ca), "--mqtt-cert", str(cred.cert),
                "--mqtt-key", str(cred.key)]

    def _start_ble(self, patient: str) -> dict[str, Any]:
        """A BLE simulator process (bumble virtual controllers) for one patient's glucometer
        and blood-pressure monitor; returns how the gateway reaches and attributes them."""
        with self._log("ble-sim") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "firmware_sim.ble.demo", "--port", str(free_port()),
                 "--patient", patient, "--profile", "glucometer", "--profile", "bp",
                 "--records", "10", "--interval", str(max(2.0, self.opts.live_interval_s))],
                stdout=subprocess.PIPE, stderr=log)
        self.ble_sims.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"BLE simulator did not start; see {self.workdir}/ble-sim.log")
        described: dict[str, Any] = json.loads(line)
        described["source"]["keystore"] = str(self.workdir / "ble-bonds.json")
        return described

    def _start_analyzer(self, index: int) -> PtyDevice:
        """The EHPAD's shared POC analyzer, simulated on a pty by a thread of this process."""
        analyzer = start_ward_analyzer(list(_residents(self.opts, index)),
                                       interval=POC_INTERVAL_S,
                                       unknown_share=POC_UNKNOWN_SHARE, tz="Europe/Paris",
                                       seed=self.opts.seed + index)
        self.analyzers.append(analyzer)
        return analyzer

    def _wait_ingest(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.cloud is not None and self.cloud.poll() is not None:
                raise RuntimeError(f"cloud exited; see {self.workdir}/cloud.log")
            try:
                if self.api.get("/health").json()["ingest"]["subscribed"]:
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("cloud ingest did not subscribe within 60 s")

    def snapshot(self) -> dict[str, Any]:
        sent = depth = 0
        for s in self.sites:
            taken, d = s.counts()
            sent, depth = sent + taken, depth + d
        try:
            alerts = self.api.get("/alerts", params={"limit": 10000}).json()
            health = self.api.get("/health").json().get("ingest", {})
        except (httpx.HTTPError, ValueError):
            alerts, health = [], {}
        return {"sent": sent, "outbox": depth, "stored": health.get("readings_stored", 0),
                "quarantined": health.get("quarantined", 0), "alerts": alerts}

    def table(self, snap: dict[str, Any], elapsed: float) -> Table:
        t = Table(title=f"Vigie demo: {elapsed:.0f} s, x{self.opts.speed:.0f} simulated time")
        for col in ("readings taken", "in outboxes", "stored", "quarantined", "open alerts"):
            t.add_column(col, justify="right")
        open_alerts = sum(1 for a in snap["alerts"] if a["state"] == "open")
        t.add_row(str(snap["sent"]), str(snap["outbox"]), str(snap["stored"]),
                  str(snap["quarantined"]), str(open_alerts))
        return t

    def run_for(self, duration: float | None) -> None:
        stop = {"now": False}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        start = time.monotonic()
        last_line = 0.0
        live = None if self.opts.headless else Live(
            self.table(self.snapshot(), 0), console=self.console, auto_refresh=False)
        with live or contextlib.nullcontext():
            while not stop["now"] and (duration is None or time.monotonic() - start < duration):
                time.sleep(0.5)
                elapsed = time.monotonic() - start
                snap = self.snapshot()
                if self.opts.headless:
                    if elapsed - last_line >= 5:
                        last_line = elapsed
                        self.console.print(
                            f"[{elapsed:4.0f} s] taken {snap['sent']}, stored "
                            f"{snap['stored']}, outbox {snap['outbox']}, alerts "
                            f"{len(snap['alerts'])}")
                elif live is not None:
                    live.update(self.table(snap, elapsed), refresh=True)

    def finish(self) -> dict[str, Any]:
        self.console.print("stopping gateways (they drain their outboxes)...")
        for s in self.sites:
            s.proc.send_signal(signal.SIGTERM)
        for s in self.sites:
            try:
                s.proc.wait(30)
            except subprocess.TimeoutExpired:
                s.proc.kill()
        sent: set[str] = set()
        for s in self.sites:
            sent |= s.ids()
        stored = self._wait_stored(sent)
        quarantined = {q["reading_id"] for q in self._get("/quarantine", [])}
        alerts = self._get("/alerts", [], {"limit": 10000})
        counts = Counter(stored)
        return {
            "observations_sent": len(sent),
            "observations_stored": len(counts),
            "duplicates": sum(c - 1 for c in counts.values()),
            "quarantined": len(sent & quarantined),
            "lost": len(sent - set(counts) - quarantined),
            "still_in_outboxes": sum(s.counts()[1] for s in self.sites),
            "alerts": dict(sorted(Counter(a["rule"] for a in alerts).items())),
            "gaps": self._get("/gaps", []),
            "stored_by_kind": self._by_kind(),
        }

    def _by_kind(self) -> dict[str, int]:
        """Readings stored per kind: shows which device families reached InfluxDB."""
        try:
            series = self.store.query("SELECT COUNT(id) FROM observation GROUP BY kind") \
                if self.store else []
        except CloudError:
            return {}
        return {s["tags"]["kind"]: int(s["values"][0][1]) for s in series}

    def _get(self, path: str, default: Any, params: dict[str, Any] | None = None) -> Any:
        try:
            return self.api.get(path, params=params).json()
        except (httpx.HTTPError, ValueError):
            return default

    def _wait_stored(self, sent: set[str], timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        ids: list[str] = []
        while time.monotonic() < deadline:
            try:
                ids = stored_ids(self.store) if self.store else []
            except CloudError:
                ids = []
            if sent <= set(ids):
                break
            time.sleep(0.5)
        return ids

    def close(self) -> None:
        for s in self.sites:
            if s.proc.poll() is None:
                s.proc.kill()
        for analyzer in self.analyzers:
            analyzer.stop()
        for sim in self.ble_sims:
            sim.kill()
            sim.wait(10)
        if self.cloud is not None and self.cloud.poll() is None:
            self.cloud.terminate()
            try:
                self.cloud.wait(15)
            except subprocess.TimeoutExpired:
                self.cloud.kill()
        self.api.close()
        if self.store is not None:
            self.store.close()
        self.svc.stop()


def run_demo(opts: DemoOptions) -> int:
    duration = opts.duration if opts.duration is not None else (60.0 if opts.headless else None)
    if duration is not None:
        # Start the simulated history so that it reaches "now" as the run ends: the last
        # readings are fresh and page as they would live (older ones are history).
        opts = dataclasses.replace(
            opts, lookback_days=min(opts.lookback_days, 0.5 * duration * opts.speed / 86400))
    with tempfile.TemporaryDirectory(prefix="vigie-demo-") as tmp:
        demo = Demo(opts, Path(tmp))
        try:
            demo.start()
            if not opts.headless:
                demo.console.print("Press Ctrl-C to stop.")
            demo.run_for(duration)
            summary = demo.finish()
        finally:
            demo.close()
    print(json.dumps(summary), flush=True)
    return 0 if summary["lost"] == 0 and summary["duplicates"] == 0 else 1
