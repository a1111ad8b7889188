"""Benchmark the BLE path: RACP synchronisation speed, gateway cost with 20 peripherals.

    .venv/bin/python benchmarks/ble.py                    # --runs 3 --seconds 20 --records 1000
    .venv/bin/python benchmarks/ble.py --runs 1 --seconds 5

Figures (median over ``--runs``):

- RACP sync: wall time for a glucometer holding ``--records`` records to be read completely
  into a real outbox (SQLite, WAL, synchronous=FULL), from its first advertisement (bond,
  discovery, RACP "all records", commits every 50 records). Simulator and gateway stack run
  in this one process over HCI/TCP, so the figure includes the simulator's own cost; the
  meter sends records back to back (``--record-gap`` 0).
- Gateway load: a real ``vigie gateway run`` process with a ``ble`` source serving 20
  simulated peripherals (10 patients x glucometer + blood-pressure monitor, each measuring
  every ``--interval`` s) and publishing to a real Mosquitto. CPU time (user + system, from
  /proc/PID/stat) and resident memory (VmRSS at the end, VmHWM peak, from /proc/PID/status)
  of the gateway process over ``--seconds`` after a warm-up; readings taken in that time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers.ble.bumble_backend import BumbleHost, BumbleHostConfig
from device_drivers.ble.session import (
    BleCentral,
    CentralSettings,
    KnownDevice,
    Profile,
    SessionSettings,
)
from firmware_sim.ble.link import SimulatedLink
from firmware_sim.ble.peripherals import Glucometer
from gateway.intake import DeviceProfile, Intake
from gateway.outbox import Outbox
from gateway.sources.ble import BleSource, _IntakeSink
from vigie.services import Mosquitto, free_port

GLU_ADDR = "C0:00:00:00:18:08"
GATEWAY = [sys.executable, "-m", "vigie"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- RACP synchronisation ------------------------------------------------------------


async def racp_sync(records: int, record_gap: float, workdir: Path) -> float:
    """Seconds from the wake-up of a glucometer to its last record committed."""
    outbox = Outbox(workdir / "outbox.sqlite3")
    intake = Intake("gw-bench", outbox, {"glu-1": DeviceProfile("glu-1", "p-1")})
    source = BleSource("ble", {"devices": []})
    device = KnownDevice(GLU_ADDR, "glu-1", Profile.GLUCOMETER)
    settings = CentralSettings(session=SessionSettings(max_session_s=120.0))
    async with SimulatedLink() as sim:
        glu = await sim.add(Glucometer("Bench Glucometer", GLU_ADDR, record_gap=record_gap))
        for i in range(records):
            glu.measure(80 + i % 100, silent=True)
        async with BumbleHost(BumbleHostConfig(sim.hci_transport)) as host:
            scanner, client = host.backends()
            central = BleCentral([device], _IntakeSink(source, intake), settings=settings,
                                 scanner_backend=scanner, client_backend=client)
            task = asyncio.create_task(central.run())
            await asyncio.sleep(0.3)  # scanner up
            started = time.perf_counter()
            glu.wake()
            while outbox.cursor("ble:glu-1") != str(records):
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if outbox.taken_count() != records:
        raise SystemExit(f"RACP sync took {outbox.taken_count()} records, not {records}")
    outbox.close()
    return elapsed


# -- gateway process with 20 peripherals ---------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def memory_kib(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def wait_line(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (line := path.read_text().partition("\n")[0]):
            return line
        time.sleep(0.05)
    raise SystemExit(f"no output in {path} after {timeout} s")


def toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(value)


def gateway_load(seconds: float, interval: float, workdir: Path) -> dict[str, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    patients = [f"p-{i:03d}" for i in range(10)]
    sim_out = workdir / "sim.out"
    with sim_out.open("wb") as out:
        sim = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim.ble.demo", "--port", str(free_port()),
             "--records", "20", "--interval", str(interval),
             *[a for p in patients for a in ("--patient", p)]],
            stdout=out, stderr=subprocess.STDOUT)
    gateway = None
    try:
        ready = json.loads(wait_line(sim_out, 30))
        config = workdir / "gateway.toml"
        devices = "".join("[[devices]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in d.items())
                          for d in ready["devices"])
        source = dict(ready["source"], keystore=str(workdir / "bonds.json"))
        config.write_text(
            f'[gateway]\nid = "gw-bench"\noutbox = "outbox.sqlite3"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n{devices}[[sources]]\n'
            + "".join(f"{k} = {toml(v)}\n" for k, v in source.items()))
        with (workdir / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen([*GATEWAY, "gateway", "run", "--config", str(config)],
                                       stdout=log, stderr=subprocess.STDOUT)
        time.sleep(3.0)  # warm-up: imports, host power-on, first records
        taken0, cpu0 = taken(workdir), cpu_seconds(gateway.pid)
        time.sleep(seconds)
        cpu1, mem = cpu_seconds(gateway.pid), memory_kib(gateway.pid)
        return {"cpu_s": cpu1 - cpu0, "cpu_pct": 100 * (cpu1 - cpu0) / seconds,
                "rss_mib": mem["VmRSS"] / 1024, "peak_rss_mib": mem["VmHWM"] / 1024,
                "readings": taken(workdir) - taken0, "total_readings": taken(workdir)}
    finally:
        for proc in (gateway, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        broker.stop()


def taken(workdir: Path) -> int:
    path = workdir / "outbox.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--record-gap", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between measurements of each simulated device")
    args = parser.parse_args()
    syncs, loads = [], []
    with tempfile.TemporaryDirectory(prefix="vigie-ble-bench-") as tmp:
        for run in range(args.runs):
            work = Path(tmp) / f"run-{run}"
            work.mkdir()
            syncs.append(asyncio.run(racp_sync(args.records, args.record_gap, work)))
            loads.append(gateway_load(args.seconds, args.interval, work / "gateway"))
            print(f"run {run + 1}: sync {syncs[-1]:.2f} s, gateway {loads[-1]}", flush=True)
    med = statistics.median
    print(f"\nRACP sync of {args.records} records: median {med(syncs):.2f} s "
          f"({args.records / med(syncs):.0f} records/s); runs: "
          + ", ".join(f"{s:.2f}" for s in syncs))
    print(f"gateway, 20 peripherals, {args.seconds:.0f} s (median of {args.runs}):")
    for key in ("cpu_s", "cpu_pct", "rss_mib", "peak_rss_mib", "readings"):
        print(f"  {key:>13}: {med(load[key] for load in loads):.1f}")


if __name__ == "__main__":
    main()
