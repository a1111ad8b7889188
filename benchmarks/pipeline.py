"""Pipeline benchmark: sustained readings/s through one ingest process, and latencies.

    .venv/bin/python benchmarks/pipeline.py [--readings 60000] [--runs 3]

Each run starts its own Mosquitto and InfluxDB, one ``vigie cloud run`` process (ingest with
QoS 1 and acknowledgement after the InfluxDB write, rules, API), and a load process that
publishes batches the way gateways do.

- Throughput: ``--readings`` readings published as fast as the broker takes them; the figure
  is readings / (last reading stored - first published).
- Latency, at a steady ``--rate`` below saturation: reading-to-InfluxDB is measured by the
  ingest worker (InfluxDB write acknowledged minus the reading's ``received_at``, last 10,000
  readings, from ``/health``); reading-to-alert is the alert's ``raised_at`` (in the same
  transaction that stores it, after the InfluxDB write) minus the ``received_at`` of the low
  glucose that raised it (one in 20 readings is a low glucose of a fresh patient, so each one
  opens an alert).

- ``--hostile N``: during the latency phase another gateway also sends N hostile messages a
  second (issue 11's attacks: deep nesting, numbers no float holds, a batch dated 2200, a
  batch claiming another site, a retained status whose outbox overflows 64 bits, random
  bytes, and 200-reading batches from a gateway nobody registered); compare the
  reading-to-alert figures with and without it.

Figures are medians over runs: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_api.influx import InfluxV1
from cloud_api.queries import point_count
from cloud_api.tenancy import register_site
from vigie.contract import Batch, iso, observations_topic
from vigie.services import Services, free_port


def reading(i: int, gateway: str, low: bool, run_tag: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": secrets.token_hex(16), "device": f"d{i % 50}",
            "patient": f"p-{run_tag}-{i}" if low else f"p{i % 500}", "seq": i // 50 + 1,
            # a steady value per patient: readings milliseconds apart with swinging values
            # would be a CGM in free fall to the rules, and keep alerts changing
            "kind": "glucose", "value": 45.0 if low else 100.0 + (i % 500) % 80,
            "unit": "mg/dL",
            "measured_at": iso(now), "received_at": iso(now), "device_time": None,
            "clock_offset_s": 0.0, "tz": None, "time_trusted": True, "flags": []}


class Load:
    def __init__(self, port: int, gateway: str = "gw-bench") -> None:
        self.gateway = gateway
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(32)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq = 0

    def publish(self, n: int, batch: int, rate: float | None, low_every: int, tag: str) -> None:
        topic = observations_topic(self.gateway)
        start = time.monotonic()
        infos = []
        for first in range(0, n, batch):
            rows = tuple(reading(self.seq + i, self.gateway,
                                 low_every > 0 and (self.seq + i) % low_every == 0, tag)
                         for i in range(first, min(n, first + batch)))
            payload = Batch(self.gateway, datetime.now(UTC), rows).encode()
            infos.append(self.client.publish(topic, payload, qos=1))
            if rate:
                due = start + (first + batch) / rate
                time.sleep(max(0.0, due - time.monotonic()))
        for info in infos:
            info.wait_for_publish(120)
        self.seq += n

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
        row = reading(1, evil, False, "evil")
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
                reading(i, stranger, False, "x") for i in range(200))).encode(), False),
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


def one_run(args: argparse.Namespace, run: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp, Services(Path(tmp)) as svc:
        api_port = free_port()
        db = Path(tmp) / "cloud.sqlite3"
        cloud = subprocess.Popen(
            [sys.executable, "-m", "vigie", "cloud", "run", "--mqtt", svc.mqtt, "--influx",
             svc.influx.url, "--db-url", f"sqlite:///{db}", "--api-port", str(api_port)],
            stdout=subprocess.DEVNULL, stderr=(Path(tmp) / "cloud.log").open("w"))
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10)
        store = InfluxV1(svc.influx.url, "vigie")
        try:
            _wait(lambda: _subscribed(api), 60)
            lat_n = int(args.rate * args.latency_seconds)
            # the care team's registry: readings of unregistered gateways or patients are
            # quarantined (issue 11), so the gateway and every patient the load names exist
            lows = [f"p-l{run}-{j}" for j in range(args.readings, args.readings + lat_n)
                    if j % 20 == 0]
            register_site(f"sqlite:///{db}", "site-1", ["gw-bench", "gw-evil"],
                          [f"p{k}" for k in range(500)] + lows)
            load = Load(svc.mosquitto.port)
            # throughput phase
            t0 = time.monotonic()
            load.publish(args.readings, args.batch, None, 0, f"t{run}")
            published = time.monotonic() - t0
            _wait(lambda: point_count(store) >= args.readings, 600)
            elapsed = time.monotonic() - t0
            # latency phase, below saturation
            before = point_count(store)
            t1 = datetime.now(UTC)
            with contextlib.ExitStack() as attacks:
                if args.hostile > 0:
                    attacks.enter_context(Hostile(svc.mosquitto.port, args.hostile))
                load.publish(lat_n, args.latency_batch, args.rate, 20, f"l{run}")
                _wait(lambda: point_count(store) >= before + lat_n, 300)
            load.close()
            to_alert = _alert_latencies(store, db, t1)
            window = api.get("/health").json()["ingest"]["latency_to_store"]
        finally:
            cloud.terminate()
            cloud.wait(30)
            api.close()
            store.close()
    return {"readings_per_s": args.readings / elapsed, "publish_s": published,
            "store_p50_ms": window["p50_ms"], "store_p99_ms": window["p99_ms"],
            "alert_p50_ms": _pct(to_alert, 0.5), "alert_p99_ms": _pct(to_alert, 0.99),
            "alerts": float(len(to_alert))}


def _subscribed(api: httpx.Client) -> bool:
    try:
        return bool(api.get("/health").json()["ingest"]["subscribed"])
    except (httpx.HTTPError, KeyError, ValueError):
        return False


def _wait(pred: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark: timed out waiting for the pipeline")
        time.sleep(0.05)


def _alert_latencies(store: InfluxV1, db: Path, since: datetime) -> list[float]:
    rows = store.query(f"SELECT received_at, id FROM observation WHERE time >= '{iso(since)}'")
    received = {rid: datetime.fromisoformat(rec) for s in rows for _, rec, rid in s["values"]}
    to_alert = []
    with sqlite3.connect(db) as conn:
        for rid, raised in conn.execute("SELECT reading_id, raised_at FROM alerts"):
            if rid in received:
                at = datetime.fromisoformat(raised).replace(tzinfo=UTC)
                to_alert.append((at - received[rid]).total_seconds() * 1000)
    return to_alert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readings", type=int, default=60_000, help="throughput phase size")
    ap.add_argument("--batch", type=int, default=200, help="readings per MQTT message")
    ap.add_argument("--rate", type=float, default=2000.0, help="latency phase readings/s")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--latency-batch", type=int, default=20,
                    help="readings per message in the latency phase")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hostile", type=float, default=0.0,
                    help="hostile messages a second from another gateway in the latency phase")
    args = ap.parse_args()
    results = []
    for run in range(args.runs):
        r = one_run(args, run)
        results.append(r)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(json.dumps({"median_of_runs": args.runs, **{k: round(v, 1) for k, v in med.items()}}))
    print(f"\nsustained ingest: {med['readings_per_s']:.0f} readings/s (median of {args.runs}); "
          f"reading->InfluxDB p50 {med['store_p50_ms']:.0f} ms p99 {med['store_p99_ms']:.0f} ms; "
          f"reading->alert p50 {med['alert_p50_ms']:.0f} ms p99 {med['alert_p99_ms']:.0f} ms "
          f"at {args.rate:.0f} readings/s")


if __name__ == "__main__":
    main()
