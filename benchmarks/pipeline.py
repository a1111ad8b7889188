"""Pipeline benchmark: a territory of ``--patients`` patients through one cloud process.

    .venv/bin/python benchmarks/pipeline.py --patients 10000 [--readings 60000] [--runs 3]

Each run starts its own Mosquitto and InfluxDB and one ``vigie cloud run`` process (ingest
with QoS 1 and acknowledgement after the InfluxDB write, rules, API), registers the
territory in bulk and seeds its history, then publishes the way gateways do.

The territory (``Population``): patients in gateways of 50 (one home hub or one EHPAD ward
each), sites of 1,000. A tenth are on a CGM (a glucose every 5 minutes, sensor and
glucometer), half check capillary glucose four times a day (glucometer), the others have
heart failure (a scale and a blood-pressure monitor: a weight, a systolic and a diastolic
once a day), as in the demo (``vigie/demo.py``). Readings come in 5-minute slots of
simulated time; each gateway sends what its patients measured in a message (at most
``--batch`` readings).

Phases of a run, each figure from the cloud's ``/health`` counters (a reading counts once
its batch is written, evaluated and recorded, just before the acknowledgement):

- start-up: process start to subscribed, empty store;
- history: ``--history-hours`` of the mix written straight to InfluxDB (the stream table
  seeded to match), as if the cloud had ingested it;
- throughput: ``--readings`` readings of the mix, the slots just before now, published as
  fast as the broker takes them; readings / (last recorded - first published);
- latency, at a steady ``--rate`` below saturation, the mix measured now:
  reading-to-InfluxDB from the ingest worker (last 10,000 readings), reading-to-alert as the
  alert's ``raised_at`` minus the ``received_at`` of the reading that opened it (one glucose
  reading in 20 is a low of a patient with no alert yet, until every glucose patient has had
  one); cloud RSS after it;
- restart: the cloud stopped and started again on the same stores (start-up with history),
  then one reading for every patient of the territory, as fast as the broker takes them:
  warm-up time (first published to last recorded), every patient's rule state rebuilt from
  InfluxDB; cloud RSS after it.

- ``--hostile N``: during the latency phase another gateway also sends N hostile messages a
  second (issue 11's attacks: deep nesting, numbers no float holds, a batch dated 2200, a
  batch claiming another site, a retained status whose outbox overflows 64 bits, random
  bytes, and 200-reading batches from a gateway nobody registered); compare the
  reading-to-alert figures with and without it.
- ``--profile FILE``: the first run's ingest threads under cProfile, before the restart
  (FILE) and after it (FILE.restart), top cumulative entries printed; the figures of a
  profiled run do not compare with the others.

Figures are medians over runs: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pstats
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import insert

from cloud_api.db import Stream, make_engine, make_sessions
from cloud_api.influx import InfluxV1
from cloud_api.tenancy import register_site
from vigie.contract import Batch, iso, observations_topic
from vigie.services import Services, free_port

PER_GATEWAY = 50  # patients per gateway
PER_SITE = 1000  # patients per care site
SLOT = timedelta(minutes=5)
DAY_SLOTS = 288
UNITS = {"glucose": "mg/dL", "weight": "kg", "bp_systolic": "mm[Hg]", "bp_diastolic": "mm[Hg]"}

# the cloud's ingest thread under cProfile (--profile): ``python -c PROFILED FILE args...``
PROFILED = """
import cProfile, sys, time
from cloud_api import ingest
out = sys.argv.pop(1)
prof = cProfile.Profile()
run, take0 = ingest.Ingest.run, ingest.Ingest._take
def profiled(self, stop):
    prof.enable()
    run(self, stop)
dumped = [time.monotonic()]
def take(self, timeout):
    # uvicorn re-raises SIGTERM once stopped: no exit handler runs, so the worker itself
    # saves the statistics every 2 s (it calls _take every 0.2 s when idle)
    if time.monotonic() - dumped[0] > 2:
        prof.disable()
        prof.dump_stats(out)
        prof.enable()
        dumped[0] = time.monotonic()
    return take0(self, timeout)
ingest.Ingest.run, ingest.Ingest._take = profiled, take
sys.argv[0] = "vigie"
from vigie.cli import main
main()
"""


@dataclass(frozen=True, slots=True)
class Member:
    index: int
    patient: str
    gateway: str
    site: str
    profile: str  # "cgm", "dm" (capillary glucose) or "hf" (heart failure)
    base: float  # the patient's usual glucose (mg/dL) or weight (kg)

    def devices(self) -> tuple[str, ...]:
        return {"cgm": (f"cgm-{self.index}", f"gluco-{self.index}"),
                "dm": (f"gluco-{self.index}",),
                "hf": (f"scale-{self.index}", f"bp-{self.index}")}[self.profile]


Event = tuple[Member, str, str, float]  # member, device, kind, value


class Population:
    """The territory: who measures what, when, with which device, through which gateway."""

    def __init__(self, n: int) -> None:
        self.members = []
        for i in range(n):
            profile = "cgm" if i % 10 == 0 else "dm" if i % 2 else "hf"
            base = 60.0 + (i * 7919) % 35 if profile == "hf" else 100.0 + (i * 7919) % 60
            self.members.append(Member(i, f"p{i}", f"gw-{i // PER_GATEWAY}",
                                       f"site-{i // PER_SITE}", profile, base))
        self.cgm = [m for m in self.members if m.profile == "cgm"]
        # spot measurers by the slot of the day they measure in
        self.dm_at: list[list[Member]] = [[] for _ in range(DAY_SLOTS // 4)]
        self.hf_at: list[list[Member]] = [[] for _ in range(DAY_SLOTS)]
        for m in self.members:
            if m.profile == "dm":
                self.dm_at[(m.index * 31) % len(self.dm_at)].append(m)
            elif m.profile == "hf":
                self.hf_at[(m.index * 31) % len(self.hf_at)].append(m)
        self.seq: dict[tuple[str, str], int] = {}
        self._ids = 0

    def per_slot(self) -> float:
        hf = sum(len(x) for x in self.hf_at)
        dm = sum(len(x) for x in self.dm_at)
        return len(self.cgm) + dm / len(self.dm_at) + 3 * hf / len(self.hf_at)

    def events(self, slot: int) -> Iterator[Event]:
        """What the territory measures in 5-minute slot number ``slot``."""
        for m in self.cgm:
            yield m, f"cgm-{m.index}", "glucose", round(m.base + 15 * math.sin(slot / 40), 1)
        for m in self.dm_at[slot % len(self.dm_at)]:
            yield m, f"gluco-{m.index}", "glucose", m.base
        for m in self.hf_at[slot % len(self.hf_at)]:
            yield m, f"scale-{m.index}", "weight", m.base
            yield m, f"bp-{m.index}", "bp_systolic", 110.0 + m.index % 30
            yield m, f"bp-{m.index}", "bp_diastolic", 70.0 + m.index % 10

    def one_each(self) -> Iterator[Event]:
        """One reading for every patient: the warm-up pass."""
        for m in self.members:
            if m.profile == "hf":
                yield m, f"scale-{m.index}", "weight", m.base
            else:
                yield m, m.devices()[0], "glucose", m.base

    def next_seq(self, m: Member, device: str) -> int:
        key = (m.gateway, device)
        self.seq[key] = self.seq.get(key, 0) + 1
        return self.seq[key]

    def next_id(self) -> str:
        self._ids += 1
        return f"{self._ids:016x}{secrets.token_hex(8)}"

    def row(self, event: Event, measured: datetime, received: datetime) -> dict[str, Any]:
        m, device, kind, value = event
        return {"id": self.next_id(), "device": device, "patient": m.patient,
                "seq": self.next_seq(m, device), "kind": kind, "value": value,
                "unit": UNITS[kind], "measured_at": iso(measured), "received_at": iso(received),
                "device_time": None, "clock_offset_s": 0.0, "tz": None, "time_trusted": True,
                "flags": []}

    def line(self, event: Event, measured: datetime) -> str:
        """The InfluxDB point ingest would have written for ``event`` (history seeding)."""
        m, device, kind, value = event
        at = iso(measured)
        stamp = int(measured.timestamp()) * 1_000_000_000
        return (f"observation,patient={m.patient},kind={kind},device={device},"
                f"gateway={m.gateway},site={m.site} value={value!r},id=\"{self.next_id()}\","
                f"seq={self.next_seq(m, device)}i,received_at=\"{at}\",time_trusted=true,"
                f"unit=\"{UNITS[kind]}\",ingested_ns={stamp}i {stamp}")


def per_gateway(events: list[tuple[Event, dict[str, Any]]], batch: int
                ) -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows grouped into messages: per gateway, in order, at most ``batch`` a message."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for event, row in events:
        groups.setdefault(event[0].gateway, []).append(row)
    return [(gw, rows[i:i + batch]) for gw, rows in groups.items()
            for i in range(0, len(rows), batch)]


class Load:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(32)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: list[tuple[str, list[dict[str, Any]]]],
                rate: float | None = None,
                stamp: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Publish each gateway's message; ``rate``: readings per second, ``stamp`` sets each
        row's times just before it leaves."""
        start = time.monotonic()
        sent = 0
        infos = []
        for gateway, rows in messages:
            if stamp is not None:
                for row in rows:
                    stamp(row)
            payload = Batch(gateway, datetime.now(UTC), tuple(rows)).encode()
            infos.append(self.client.publish(observations_topic(gateway), payload, qos=1))
            sent += len(rows)
            if rate:
                time.sleep(max(0.0, start + sent / rate - time.monotonic()))
        for info in infos:
            info.wait_for_publish(300)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def plain_reading(gateway: str) -> dict[str, Any]:
    now = iso(datetime.now(UTC))
    return {"id": secrets.token_hex(16), "device": "d1", "patient": "p1", "seq": 1,
            "kind": "glucose", "value": 100.0, "unit": "mg/dL", "measured_at": now,
            "received_at": now, "device_time": None, "clock_offset_s": 0.0, "tz": None,
            "time_trusted": True, "flags": []}


class Hostile:
    """A thread publishing issue 11's hostile messages at ``rate`` a second until stopped."""

    def __init__(self, port: int, rate: float) -> None:
        self.rate = rate
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def payloads(self) -> list[tuple[str, bytes, bool]]:
        now = datetime.now(UTC)
        evil, stranger = "gw-evil", "gw-stranger"
        row = plain_reading(evil)
        batch = Batch(evil, now, (row,), site="site-1").encode()
        future = dict(row, id=secrets.token_hex(16), measured_at="2200-01-01T00:00:00Z")
        return [
            (observations_topic(evil), b"[" * 100_000, False),
            (observations_topic(evil), batch.replace(b'"value":', b'"value":' + b"9" * 5000
                                                     + b",\"x\":"), False),
            (observations_topic(evil), Batch(evil, now, (future,), site="site-1").encode(),
             False),
            (observations_topic(evil), Batch(evil, now, (row,), site="site-2").encode(), False),
            (f"vigie/v1/gateways/{evil}/status", b'{"state":"online","outbox":' +
             str(2**64).encode() + b"}", True),
            (observations_topic(evil), secrets.token_bytes(2000), False),
            (observations_topic(stranger), Batch(stranger, now, tuple(
                plain_reading(stranger) for _ in range(200))).encode(), False),
        ]

    def _run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            for topic, payload, retain in self.payloads():
                self.client.publish(topic, payload, qos=1, retain=retain)
                self.sent += 1
                due = start + self.sent / self.rate
                if self.stop.wait(max(0.0, due - time.monotonic())):
                    return

    def __enter__(self) -> Hostile:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class Cloud:
    """One ``vigie cloud run`` process on the run's stores."""

    def __init__(self, svc: Services, db: Path, log: Path, profile: str | None) -> None:
        self.api_port = free_port()
        args = ["cloud", "run", "--mqtt", svc.mqtt, "--influx", svc.influx.url,
                "--db-url", f"sqlite:///{db}", "--api-port", str(self.api_port)]
        head = [sys.executable, "-c", PROFILED, profile] if profile else \
            [sys.executable, "-m", "vigie"]
        t0 = time.monotonic()
        self.proc = subprocess.Popen([*head, *args], stdout=subprocess.DEVNULL,
                                     stderr=log.open("a"))
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=30)
        _wait(lambda: bool(self.health().get("subscribed")), 600, "cloud start-up")
        self.startup_s = time.monotonic() - t0

    def health(self) -> dict[str, Any]:
        try:
            body = self.api.get("/health").json()
        except (httpx.HTTPError, ValueError):
            return {}
        ingest = body.get("ingest") if isinstance(body, dict) else None
        return ingest if isinstance(ingest, dict) else {}

    def done(self) -> int:
        """Readings recorded (stored and evaluated) plus quarantined, since start."""
        h = self.health()
        return int(h.get("readings_stored", 0)) + int(h.get("quarantined", 0))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def wait_done(self, target: int, what: str, timeout: float = 3600) -> None:
        start = last = time.monotonic()
        while (n := self.done()) < target:
            now = time.monotonic()
            if now - start > timeout:
                raise SystemExit(f"benchmark: timed out waiting for {what}")
            if now - last >= 10:
                print(f"    {what}: {n:,}/{target:,} recorded ({n / (now - start):,.0f}/s)",
                      flush=True)
                last = now
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.api.close()


def register(db: Path, pop: Population) -> float:
    """The territory's sites, gateways and patients, in bulk; seconds taken."""
    t0 = time.monotonic()
    by_site: dict[str, tuple[set[str], list[str]]] = {}
    for m in pop.members:
        gws, pids = by_site.setdefault(m.site, (set(), []))
        gws.add(m.gateway)
        pids.append(m.patient)
    for site, (gws, pids) in by_site.items():
        register_site(f"sqlite:///{db}", site, sorted(gws), pids)
    return time.monotonic() - t0


def seed_history(store: InfluxV1, db: Path, pop: Population, first_slot: int, slots: int,
                 end: datetime) -> int:
    """``slots`` slots of the mix before ``end`` written to InfluxDB as ingest would have, and
    the stream table to match; returns the points written."""
    lines: list[str] = []
    written = 0
    last_print = time.monotonic()
    for k in range(slots):
        at = end - (slots - k) * SLOT
        lines.extend(pop.line(e, at) for e in pop.events(first_slot + k))
        if len(lines) >= 10_000 or k == slots - 1:
            store.write(lines)
            written += len(lines)
            lines = []
            if time.monotonic() - last_print >= 10:
                print(f"    history: {written:,} points ({k + 1}/{slots} slots)", flush=True)
                last_print = time.monotonic()
    engine = make_engine(f"sqlite:///{db}")
    try:
        with make_sessions(engine).begin() as session:
            rows = [{"gateway_id": g, "device_id": d, "high_seq": s, "last_seen": end}
                    for (g, d), s in pop.seq.items()]
            if rows:
                session.execute(insert(Stream), rows)
    finally:
        engine.dispose()
    return written


def one_run(args: argparse.Namespace, run: int) -> dict[str, float]:
    pop = Population(args.patients)
    per_slot = pop.per_slot()
    t_slots = max(1, math.ceil(args.readings / per_slot))
    h_slots = int(args.history_hours * 12)
    now = datetime.now(UTC).replace(microsecond=0)
    t_start = now - t_slots * SLOT  # the throughput phase's readings: the slots before now
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp, Services(Path(tmp)) as svc:
        db = Path(tmp) / "cloud.sqlite3"
        log = Path(tmp) / "cloud.log"
        store = InfluxV1(svc.influx.url, "vigie")
        print(f"  run {run + 1}: starting the cloud (log: {log})", flush=True)
        cloud = Cloud(svc, db, log, args.profile if run == 0 else None)
        out["startup_s"] = cloud.startup_s
        try:
            out["register_s"] = register(db, pop)
            print(f"  run {run + 1}: registered {args.patients:,} patients in "
                  f"{out['register_s']:.1f} s; history of {args.history_hours} h", flush=True)
            t0 = time.monotonic()
            points = seed_history(store, db, pop, 0, h_slots, t_start)
            print(f"  run {run + 1}: {points:,} history points in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)

            load = Load(svc.mosquitto.port)
            # throughput phase
            events = [(e, pop.row(e, t_start + k * SLOT, t_start + k * SLOT))
                      for k in range(t_slots) for e in pop.events(h_slots + k)]
            messages = per_gateway(events, args.batch)
            n = len(events)
            print(f"  run {run + 1}: throughput, {n:,} readings in {len(messages):,} messages "
                  f"({t_slots} slots of the mix)", flush=True)
            base = cloud.done()
            t0 = time.monotonic()
            load.publish(messages)
            cloud.wait_done(base + n, "throughput")
            out["readings_per_s"] = n / (time.monotonic() - t0)
            print(f"    {out['readings_per_s']:,.0f} readings/s", flush=True)

            # latency phase
            lat_n = int(args.rate * args.latency_seconds)
            lat: list[tuple[Event, dict[str, Any]]] = []
            slot = h_slots + t_slots
            while len(lat) < lat_n:
                lat.extend((e, pop.row(e, now, now)) for e in pop.events(slot))
                slot += 1
            lat = lat[:lat_n]
            lowed: set[str] = set()
            glucose = 0
            for _event, row in lat:
                if row["kind"] == "glucose":
                    glucose += 1
                    if glucose % 20 == 0 and row["patient"] not in lowed:
                        lowed.add(row["patient"])
                        row["value"] = 45.0
            received: dict[str, datetime] = {}

            def stamp(row: dict[str, Any]) -> None:
                at = datetime.now(UTC)
                row["measured_at"] = row["received_at"] = iso(at)
                received[row["id"]] = at

            print(f"  run {run + 1}: latency, {lat_n:,} readings at {args.rate:,.0f}/s "
                  f"({len(lowed)} lows)", flush=True)
            base = cloud.done()
            t1 = datetime.now(UTC)
            with contextlib.ExitStack() as attacks:
                if args.hostile > 0:
                    attacks.enter_context(Hostile(svc.mosquitto.port, args.hostile))
                load.publish(per_gateway(lat, args.latency_batch), args.rate, stamp)
                cloud.wait_done(base + lat_n, "latency")
            window = cloud.health().get("latency_to_store", {})
            out["store_p50_ms"] = float(window.get("p50_ms", math.nan))
            out["store_p99_ms"] = float(window.get("p99_ms", math.nan))
            to_alert = _alert_latencies(db, received, t1)
            out["alert_p50_ms"], out["alert_p99_ms"] = _pct(to_alert, 0.5), _pct(to_alert, 0.99)
            out["alerts"] = float(len(to_alert))
            out["rss_mb"] = cloud.rss_mb()
            out["quarantined"] = float(cloud.health().get("quarantined", 0))

            # restart with history, then every patient once
            print(f"  run {run + 1}: restarting the cloud", flush=True)
            if args.profile and run == 0:
                time.sleep(3)  # the profiled worker saves its statistics every 2 s
            cloud.stop()
            cloud = Cloud(svc, db, log, f"{args.profile}.restart" if args.profile and run == 0
                          else None)
            out["restart_s"] = cloud.startup_s
            warm = [(e, pop.row(e, now, now)) for e in pop.one_each()]

            def restamp(row: dict[str, Any]) -> None:
                row["measured_at"] = row["received_at"] = iso(datetime.now(UTC))

            print(f"  run {run + 1}: warm-up, one reading for each of {len(warm):,} patients",
                  flush=True)
            base = cloud.done()
            t0 = time.monotonic()
            load.publish(per_gateway(warm, args.batch), None, restamp)
            cloud.wait_done(base + len(warm), "warm-up")
            out["warmup_s"] = time.monotonic() - t0
            out["rss_after_warmup_mb"] = cloud.rss_mb()
            load.close()
            if args.profile and run == 0:
                time.sleep(3)  # the profiled worker saves its statistics every 2 s
        finally:
            cloud.stop()
            store.close()
    if args.profile and run == 0:
        for path, what in ((args.profile, "throughput and latency phases"),
                           (f"{args.profile}.restart", "after the restart: the warm-up")):
            print(f"\ningest thread, {what} ({path}):")
            stats = pstats.Stats(path)
            stats.sort_stats("cumulative").print_stats(args.profile_top)
    return out


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: timed out waiting for {what}")
        time.sleep(0.05)


def _alert_latencies(db: Path, received: dict[str, datetime], since: datetime) -> list[float]:
    """ms from receipt to ``raised_at`` of the alerts the latency phase's readings opened."""
    to_alert = []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for rid, raised in conn.execute("SELECT reading_id, raised_at FROM alerts "
                                        "WHERE count = 1"):
            at = datetime.fromisoformat(raised).replace(tzinfo=UTC)
            if rid in received and at >= since:
                to_alert.append((at - received[rid]).total_seconds() * 1000)
    return to_alert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=1000, help="patients in the territory")
    ap.add_argument("--readings", type=int, default=60_000, help="throughput phase size")
    ap.add_argument("--batch", type=int, default=200, help="readings per MQTT message at most")
    ap.add_argument("--history-hours", type=float, default=12.0,
                    help="history of the mix in InfluxDB before the run")
    ap.add_argument("--rate", type=float, default=2000.0, help="latency phase readings/s")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--latency-batch", type=int, default=20,
                    help="readings per message in the latency phase at most")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hostile", type=float, default=0.0,
                    help="hostile messages a second from another gateway in the latency phase")
    ap.add_argument("--profile", default=None,
                    help="cProfile the first run's ingest thread into this file")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args()
    if args.profile:
        args.profile = os.path.abspath(args.profile)
    results = []
    for run in range(args.runs):
        r = one_run(args, run)
        results.append(r)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(json.dumps({"patients": args.patients, "median_of_runs": args.runs,
                      **{k: round(v, 1) for k, v in med.items()}}))
    print(f"\n{args.patients:,} patients, median of {args.runs}: "
          f"sustained {med['readings_per_s']:,.0f} readings/s; at {args.rate:,.0f} readings/s "
          f"reading->InfluxDB p50 {med['store_p50_ms']:.0f} ms p99 {med['store_p99_ms']:.0f} ms, "
          f"reading->alert p50 {med['alert_p50_ms']:.0f} ms p99 {med['alert_p99_ms']:.0f} ms; "
          f"start-up {med['startup_s']:.1f} s, restart {med['restart_s']:.1f} s, warm-up of "
          f"every patient {med['warmup_s']:.1f} s; cloud RSS {med['rss_mb']:.0f} MB, "
          f"{med['rss_after_warmup_mb']:.0f} MB after the warm-up")


if __name__ == "__main__":
    main()
