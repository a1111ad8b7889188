"""Patient page benchmark: the data of the trend page for 90 days of 5-minute glucose.

    .venv/bin/python benchmarks/patient_page.py [--days 90] [--runs 7]

Starts a real InfluxDB (``vigie.services.Services``), writes ``days`` of 5-minute CGM glucose
(25,920 points for 90 days) plus a daily weighing and blood pressure for one patient, serves
the API with uvicorn on a local port, and times ``GET /patients/{id}/trend?days=N`` over HTTP
(the call the patient page makes: downsampled series, weight baseline, time in range and
alerts). Prints the median and the spread of ``--runs`` timed calls after one warm-up call.
The budget (issue 7) is 300 ms; the work is done by ``GROUP BY time(...)`` in InfluxDB.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from cloud_api import accounts
from cloud_api.api import ApiContext, create_app
from cloud_api.db import make_engine, make_sessions
from cloud_api.influx import InfluxV1
from cloud_api.points import MEASUREMENT, ns
from cloud_api.tenancy import register_patient
from vigie.contract import now_utc
from vigie.services import Services, free_port

PATIENT, SITE, USER, PASSWORD = "p-bench", "site-bench", "bench-nurse", "benchmark only pw"
BUDGET_MS = 300.0


def _lines(days: int) -> list[str]:
    end = now_utc().replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    tags = f"{MEASUREMENT},patient={PATIENT},site={SITE},gateway=gw-bench"
    out = []
    for i in range(days * 288):  # every 5 minutes
        t = start + timedelta(minutes=5 * i)
        value = 140 + 60 * math.sin(i / 288 * 2 * math.pi * 3) + 25 * math.sin(i / 17)
        out.append(f'{tags},kind=glucose,device=cgm-1 value={value:.1f},unit="mg/dL",'
                   f'id="g{i}" {ns(t)}')
    for d in range(days):
        t = start + timedelta(days=d, hours=7)
        out.append(f'{tags},kind=weight,device=scale-1 value={78 + 0.02 * d:.2f},unit="kg",'
                   f'id="w{d}" {ns(t)}')
        out.append(f'{tags},kind=bp_systolic,device=bpm-1 value={128 + d % 9},unit="mm[Hg]",'
                   f'id="s{d}" {ns(t)}')
        out.append(f'{tags},kind=bp_diastolic,device=bpm-1 value={78 + d % 5},unit="mm[Hg]",'
                   f'id="d{d}" {ns(t)}')
    return out


def _serve(ctx: ApiContext, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp, \
            Services(Path(tmp) / "run") as svc:
        store = InfluxV1(svc.influx.url, "vigie")
        store.ensure_database()
        lines = _lines(args.days)
        for i in range(0, len(lines), 5000):
            store.write(lines[i:i + 5000])
        engine = make_engine(f"sqlite:///{tmp}/cloud.sqlite3")
        sessions = make_sessions(engine)
        with sessions.begin() as session:
            register_patient(session, PATIENT, SITE)
            accounts.add_user(session, USER, PASSWORD, "nurse", [SITE])
        port = free_port()
        server = _serve(ApiContext(store=store, sessions=sessions), port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            tok = http.post("/token", data={"username": USER, "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {tok['access_token']}"}
            url, params = f"/patients/{PATIENT}/trend", {"days": args.days}
            first = http.get(url, headers=headers, params=params)
            first.raise_for_status()
            body = first.json()
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                http.get(url, headers=headers, params=params).raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
        server.should_exit = True
        store.close()
        engine.dispose()
    median = statistics.median(times)
    print(json.dumps({
        "points_glucose": args.days * 288, "points_total": len(lines),
        "interval_s": body["interval_s"], "buckets_glucose": len(body["series"]["glucose"]),
        "response_bytes": len(first.content), "runs": args.runs,
        "median_ms": round(median, 1), "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1), "budget_ms": BUDGET_MS,
        "within_budget": median < BUDGET_MS}))
    return 0 if median < BUDGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
