"""``vigie gateway run``: sources -> intake (durable outbox) -> MQTT publisher.

The publisher runs in its own thread (it owns the MQTT client, ``vigie.mqtt``); sources
are asyncio tasks. SIGTERM/SIGINT stop the sources, give the publisher ``drain_timeout_s``
to empty the outbox, publish the retained "offline" status and exit. What the cloud has not
confirmed stored yet stays in the outbox for the next start (``exit_when_done`` waits for
it, too).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
import threading
from pathlib import Path

from gateway.assignments import DeviceAssignments, assignments_path
from gateway.config import GatewayConfig, load
from gateway.edge import EdgeAlarms
from gateway.errors import ConfigError, GatewayError, OutboxError
from gateway.intake import Intake
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from gateway.sources.base import Source
from gateway.sources.ble import BleSource
from gateway.sources.replay import ReplaySource
from gateway.sources.serial import SerialSource
from gateway.sources.sim import SimSource
from vigie.contract import devices_config_topic

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 3600.0

SOURCE_TYPES: dict[str, type[Source]] = {"replay": ReplaySource, "serial": SerialSource,
                                          "sim": SimSource, "ble": BleSource}


def make_source(options: dict[str, object]) -> Source:
    kind = str(options.get("type", ""))
    cls = SOURCE_TYPES.get(kind)
    if cls is None:
        raise ConfigError(f"unknown source type {kind!r} (known: {', '.join(SOURCE_TYPES)})")
    return cls(str(options["name"]), dict(options))


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.outbox = Outbox(config.outbox, config.outbox_capacity, seen_days=config.seen_days,
                             ballast_bytes=config.outbox_reserve_bytes)
        self.intake = Intake(config.gateway_id, self.outbox, config.devices)
        self.publisher = Publisher(config.gateway_id, self.outbox, config.mqtt)
        # device assignments from the cloud over the TOML's devices, kept across restarts
        self.assignments = DeviceAssignments(config.gateway_id, config.devices, self.intake,
                                             assignments_path(config.outbox))
        self.assignments.load()
        self.publisher.subscribe(devices_config_topic(config.gateway_id),
                                 self.assignments.receive)
        self.sources = [make_source(s) for s in config.sources]
        self._stop = threading.Event()
        self.alarms: EdgeAlarms | None = None
        if config.alarms is not None:  # urgent alarms paged on site when the cloud is away
            self.alarms = EdgeAlarms(config.gateway_id, config.alarms,
                                     self.publisher.offline_for)
            self.intake.on_readings(self.alarms.observe)
            self.publisher.add_feed(self.alarms)

    async def run(self) -> None:
        thread = threading.Thread(target=self.publisher.run, name="mqtt-publisher",
                                  args=(self._stop, self.config.drain_timeout_s), daemon=True)
        thread.start()
        pager = None
        if self.alarms is not None:
            pager = threading.Thread(target=self.alarms.run, name="edge-alarms",
                                     args=(self._stop,), daemon=True)
            pager.start()
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        tasks = [asyncio.create_task(s.run(self.intake), name=f"source:{s.name}")
                 for s in self.sources]
        keeper = asyncio.create_task(self._housekeeping(), name="housekeeping")
        log.info("gateway %s running: %d source(s), outbox depth %d", self.config.gateway_id,
                 len(tasks), self.outbox.depth)
        try:
            await self._wait(tasks, stopping, thread)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._stop.set()
            await asyncio.to_thread(thread.join)
            if pager is not None and self.alarms is not None:
                await asyncio.to_thread(pager.join, 10)
                self.alarms.close()
            log.info("gateway %s stopped; %d reading(s) kept in the outbox",
                     self.config.gateway_id, self.outbox.depth)
            self.outbox.close()

    async def _housekeeping(self) -> None:
        """At start and then every hour: forget the ids of readings sent long ago."""
        while True:
            await self.housekeeping_once()
            await asyncio.sleep(HOUSEKEEPING_S)

    async def housekeeping_once(self) -> int:
        try:
            forgotten = await asyncio.to_thread(self.outbox.prune_seen)
        except OutboxError as exc:  # a full disk, say: try again next round, keep running
            log.warning("%s", exc)
            return 0
        if forgotten:
            log.info("outbox: forgot %d reading ids older than %g days", forgotten,
                     self.config.seen_days)
        return forgotten

    async def _wait(self, tasks: list[asyncio.Task[None]], stopping: asyncio.Event,
                    publisher: threading.Thread) -> None:
        while not stopping.is_set():
            if not publisher.is_alive():
                raise GatewayError(f"the MQTT publisher stopped ({self.publisher.failure}); "
                                   "readings stay in the outbox for the next start")
            for task in [t for t in tasks if t.done()]:
                exc = task.exception()
                if exc is not None:
                    raise exc
            if self.config.exit_when_done and all(t.done() for t in tasks) \
                    and self.publisher.drained():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.1)


def run_from_file(path: Path) -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` dumps every thread's stack
    try:
        gateway = Gateway(load(path))
        asyncio.run(gateway.run())
    except GatewayError as exc:
        log.error("%s", exc)
        return 2
    return 0
