"""Scale-out benchmark: readings/s with 1, 2 and 4 workers per tier, nothing lost or doubled.

    .venv/bin/python benchmarks/scale_out.py [--readings 30000] [--runs 3] [--workers 1,2,4]

Each run starts its own Mosquitto and InfluxDB, then either the single process
(``vigie cloud run``, role ``all``: the baseline) or N intake workers on a shared
subscription plus N shard workers owning 16/N shards each (``--role intake|shard``, one
SQLite file shared by all), and one load process publishing QoS 1 batches the way
gateways do, from 8 gateways and 500 patients.

- Throughput: readings / (last reading stored - first published), the readings published
  as fast as the broker takes them.
- Loss and duplicates: every published reading id is looked up in InfluxDB; the table
  shows the points stored, the distinct ids among them and how many published ids are
  missing (all three must say: as many as published, 0 missing).

Figures are medians over runs. Read them against the machine: with 2 cores, 2N worker
processes, the broker, InfluxDB and the load generator share those 2 cores, so the table
shows the cost and the correctness of the split, not how it scales on a cluster.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_api.influx import InfluxV1
from cloud_api.queries import point_count, stored_ids
from cloud_api.tenancy import register_site
from vigie.contract import Batch, iso, observations_topic
from vigie.services import Services, free_port

SHARDS = 16
GATEWAYS = 8
PATIENTS = 500


def reading_id(tag: str, i: int) -> str:
    return hashlib.blake2b(f"{tag}/{i}".encode(), digest_size=16).hexdigest()


def reading(tag: str, i: int) -> dict[str, Any]:
    now = iso(datetime.now(UTC))
    return {"id": reading_id(tag, i), "device": f"d{i % 50}", "patient": f"p{i % PATIENTS}",
            "seq": i // 50 + 1, "kind": "glucose", "value": 100.0 + i % 80, "unit": "mg/dL",
            "measured_at": now, "received_at": now, "device_time": None,
            "clock_offset_s": 0.0, "tz": None, "time_trusted": True, "flags": []}


def publish(port: int, n: int, batch: int, tag: str) -> None:
    """n readings in batches, gateway after gateway, QoS 1, all PUBACKed before returning."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(32)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for k, first in enumerate(range(0, n, batch)):
        gateway = f"gw-{k % GATEWAYS}"
        rows = tuple(reading(tag, i) for i in range(first, min(n, first + batch)))
        payload = Batch(gateway, datetime.now(UTC), rows, site="site-1").encode()
        infos.append(client.publish(observations_topic(gateway), payload, qos=1))
    for info in infos:
        info.wait_for_publish(300)
    client.disconnect()
    client.loop_stop()


def worker_args(n: int) -> list[list[str]]:
    """Arguments of each ``vigie cloud run`` for n workers per tier (0: the single process)."""
    if n == 0:
        return [["--role", "all"]]
    per = SHARDS // n
    return ([["--role", "intake", "--client-id", f"bench-intake-{k}"] for k in range(n)]
            + [["--role", "shard", "--owns", f"{k * per}-{(k + 1) * per - 1}"]
               for k in range(n)])


def one_run(args: argparse.Namespace, n: int, run: int) -> dict[str, float]:
    tag = f"n{n}r{run}"
    with tempfile.TemporaryDirectory(prefix="vigie-scale-") as tmp, Services(Path(tmp)) as svc:
        db = f"sqlite:///{Path(tmp) / 'cloud.sqlite3'}"
        # the schema, once (workers starting together would race), and the registry
        register_site(db, "site-1", [f"gw-{k}" for k in range(GATEWAYS)],
                      [f"p{i}" for i in range(PATIENTS)])
        procs, ports = [], []
        env = {**os.environ, "VIGIE_LOG_LEVEL": "WARNING"}
        for k, extra in enumerate(worker_args(n)):
            ports.append(free_port())
            log = (Path(tmp) / f"worker-{k}.log").open("w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "vigie", "cloud", "run", "--mqtt", svc.mqtt,
                 "--influx", svc.influx.url, "--db-url", db, "--api-port", str(ports[-1]),
                 "--shards", str(SHARDS), *extra],
                stdout=subprocess.DEVNULL, stderr=log, env=env))
        store = InfluxV1(svc.influx.url, "vigie")
        try:
            _wait(lambda: all(_subscribed(port) for port in ports), 60)
            t0 = time.monotonic()
            publish(svc.mosquitto.port, args.readings, args.batch, tag)
            _wait(lambda: point_count(store) >= args.readings, 600)
            elapsed = time.monotonic() - t0
            time.sleep(1.0)  # a late duplicate write would show now
            ids = stored_ids(store)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            store.close()
    expected = {reading_id(tag, i) for i in range(args.readings)}
    return {"readings_per_s": args.readings / elapsed, "stored": float(len(ids)),
            "distinct": float(len(set(ids))), "missing": float(len(expected - set(ids)))}


def _subscribed(port: int) -> bool:
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                    .json()["ingest"]["subscribed"])
    except (httpx.HTTPError, KeyError, ValueError):
        return False


def _wait(pred: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark: timed out waiting for the pipeline")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--readings", type=int, default=30_000, help="readings per run")
    ap.add_argument("--batch", type=int, default=200, help="readings per MQTT message")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4",
                    help="workers per tier to try; the single process is always measured")
    args = ap.parse_args()
    counts = [0] + [int(x) for x in args.workers.split(",")]
    rows = []
    for n in counts:
        results = []
        for run in range(args.runs):
            r = one_run(args, n, run)
            results.append(r)
            print(f"{n or 'single'} run {run + 1}: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in r.items()), flush=True)
        rows.append((n, {k: statistics.median(r[k] for r in results) for k in results[0]},
                     max(r["missing"] for r in results),
                     max(r["stored"] - r["distinct"] for r in results)))
    print(f"\n{args.readings} readings per run, median of {args.runs} runs, {os.cpu_count()} "
          "cores\n")
    print("| setup | processes | readings/s | stored | distinct ids | missing (worst) "
          "| duplicates (worst) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n, med, missing, dupes in rows:
        setup = "single process (--role all)" if n == 0 else f"{n} intake + {n} shard"
        print(f"| {setup} | {max(1, 2 * n)} | {med['readings_per_s']:.0f} | "
              f"{med['stored']:.0f} | {med['distinct']:.0f} | {missing:.0f} | {dupes:.0f} |")


if __name__ == "__main__":
    main()
