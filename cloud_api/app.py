"""``vigie cloud run``: ingest worker and HTTP API in one process.

The ingest worker runs in a thread, uvicorn serves the API in the main thread; SIGTERM and
SIGINT stop both (messages in hand stay unacknowledged and come back from the broker).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn

from alerting.engine import Engine
from alerting.notify import Dispatcher, RoutingConfig, RoutingError, load_routing
from alerting.settings import AlertingError, RulesConfig, load_config
from cloud_api import notifications
from cloud_api.alerts import LifecyclePolicy
from cloud_api.api import ApiContext, create_app
from cloud_api.db import make_engine, make_sessions
from cloud_api.errors import CloudError, ConfigError, StoreUnavailable
from cloud_api.influx import InfluxV1, InfluxV2, connect_store
from cloud_api.ingest import Ingest
from cloud_api.leadership import Leadership, applies
from cloud_api.queries import HistoryLoader
from cloud_api.readiness import DEFAULT_MAX_LAG_S, Readiness
from cloud_api.runtime import tune_gc
from cloud_api.security import TokenIssuer, default_secret_path, load_secret
from cloud_api.series import DAY_ZONE, day_zone
from vigie.mqtt import Tls

log = logging.getLogger(__name__)


@dataclass
class CloudSettings:
    mqtt: str = "127.0.0.1:1883"
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "vigie"
    influx_token: str | None = None
    influx_org: str = "vigie"
    db_url: str = "sqlite:///vigie-cloud.sqlite3"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    client_id: str = "vigie-ingest-1"
    ingest: bool = True
    share_group: str | None = None
    secret_file: str | None = None  # token signing secret (default: beside the SQLite db)
    mqtt_ca: str | None = None  # secure profile: CA of the broker; None: plain MQTT
    mqtt_cert: str | None = None  # this worker's client certificate and key
    mqtt_key: str | None = None
    rules_file: str | None = None  # thresholds and per-patient settings (TOML or JSON)
    notify_file: str | None = None  # notification routing (alerting.notify); None: no pages
    role: str = "all"  # scale-out (cloud_api.sharding): all, intake or shard
    shards: int = 16  # patient shards between intake and shard workers
    owns: str | None = None  # shards a shard worker owns, e.g. "0-7" (default: all)
    day_zone: str = DAY_ZONE  # IANA zone of the pages' daily summaries (local days)
    ready_max_lag_s: float = DEFAULT_MAX_LAG_S  # /ready fails past this ingest lag

    def __post_init__(self) -> None:
        zone_of(self.day_zone)  # an unknown zone is refused here, not at the first page
        if not self.ready_max_lag_s > 0:
            raise ConfigError(f"--ready-max-lag must be positive, got {self.ready_max_lag_s}")


def zone_of(name: str) -> ZoneInfo:
    """The zone of the daily summaries; ConfigError naming the option if unknown."""
    try:
        return day_zone(name)
    except ValueError as exc:
        raise ConfigError(f"--day-zone: {exc}") from exc


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected host:port, got {text!r}")
    return host or "127.0.0.1", int(port)


def _connect_store(s: CloudSettings, wait_s: float = 60.0) -> InfluxV1 | InfluxV2:
    """Connect to InfluxDB, waiting for it to come up (it may start after us)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return connect_store(s.influx_url, s.influx_db, s.influx_token, s.influx_org)
        except StoreUnavailable as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("%s; waiting", exc)
            time.sleep(1)


def _rules(path: str | None) -> RulesConfig | None:
    if path is None:
        return None
    try:
        return load_config(Path(path))
    except AlertingError as exc:
        raise ConfigError(str(exc)) from exc


def _routing(path: str | None) -> RoutingConfig | None:
    if path is None:
        return None
    try:
        return load_routing(Path(path))
    except RoutingError as exc:
        raise ConfigError(str(exc)) from exc


def _lifecycle(routing: RoutingConfig | None) -> LifecyclePolicy:
    if routing is None:
        return LifecyclePolicy()
    return LifecyclePolicy(escalate_after=routing.escalation.after(),
                           max_escalation=routing.escalation.max_level)


def build(s: CloudSettings) -> tuple[ApiContext, Ingest | None]:
    store = _connect_store(s)
    sessions = make_sessions(make_engine(s.db_url))

    # The loader itself, not a wrapper: the engine batches warm-ups through its prefetch.
    history = HistoryLoader(store)
    zone = zone_of(s.day_zone)  # daily summaries: the pages' days and the engine's alike

    ingest = None
    if s.ingest:
        host, port = _host_port(s.mqtt)
        tls = None if s.mqtt_ca is None else Tls(s.mqtt_ca, s.mqtt_cert, s.mqtt_key)
        routing = _routing(s.notify_file)
        hooks: dict[str, Any] = {
            "lifecycle": _lifecycle(routing),
            "on_alert_change": None if routing is None else notifications.enqueue}
        if s.role == "all":
            engine = Engine(_rules(s.rules_file), history_loader=history, day_zone=zone)
            ingest = Ingest(store, sessions, engine, host, port, client_id=s.client_id,
                            share_group=s.share_group, tls=tls, clocked=engine, **hooks)
        else:  # scale-out: docs/scaling.md
            from cloud_api.sharding import scale_out_worker

            rules = _rules(s.rules_file)
            ingest = scale_out_worker(
                s.role, store, s.db_url, host, port, shards=s.shards, owns=s.owns,
                client_id=s.client_id, share_group=s.share_group, tls=tls,
                engine_factory=lambda: Engine(rules, history_loader=history, day_zone=zone),
                **hooks)

    def status() -> dict[str, Any]:
        if ingest is None:
            return {}
        # the counters by reason and by rule are copied: the worker adds keys meanwhile
        stats = {k: dict(v) if isinstance(v, dict) else v for k, v in vars(ingest.stats).items()}
        return {**stats, "latency_to_store": ingest.latency.summary()}

    secret = load_secret(Path(s.secret_file) if s.secret_file else default_secret_path(s.db_url))
    # without the worker thread (run_cloud starts it, then replaces this) /ready says the
    # ingest is not started
    readiness = Readiness(store, ingest, max_lag_s=s.ready_max_lag_s)
    return ApiContext(store=store, sessions=sessions, ingest_status=status, ingest=ingest,
                      readiness=readiness, tokens=TokenIssuer(secret), day_zone=zone), ingest


def _dispatcher(s: CloudSettings, ctx: ApiContext) -> Dispatcher | None:
    routing = _routing(s.notify_file)
    return None if routing is None else notifications.make_dispatcher(routing, ctx.sessions)


def _needs_leadership(s: CloudSettings) -> bool:
    """One ``--role all`` worker of a PostgreSQL database ingests at a time, the others stand
    by (``cloud_api.leadership``); a shared subscription or a scale-out role spreads the work
    instead, and SQLite is one machine's."""
    return s.ingest and s.role == "all" and s.share_group is None and applies(s.db_url)


class _Work:
    """The ingest worker and the notification sender of this process, started together."""

    def __init__(self, s: CloudSettings, ctx: ApiContext, ingest: Ingest | None,
                 dispatcher: Dispatcher | None, stop: threading.Event) -> None:
        self.s, self.ctx, self.ingest, self.dispatcher, self.stop = s, ctx, ingest, dispatcher, stop
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.ingest is not None:
            worker = threading.Thread(target=self.ingest.run, args=(self.stop,), name="ingest",
                                      daemon=True)
            worker.start()
            self.threads.append(worker)
            self.ctx.readiness = Readiness(self.ctx.store, self.ingest, worker,
                                           max_lag_s=self.s.ready_max_lag_s)
        if self.dispatcher is not None:  # notifications enqueued by alert changes, retried
            notifier = threading.Thread(target=self.dispatcher.run, args=(self.stop,),
                                        name="notify", daemon=True)
            notifier.start()
            self.threads.append(notifier)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=15)


def _standby(s: CloudSettings, ctx: ApiContext, work: _Work, stop: threading.Event,
             on_lost: Callable[[], None]) -> threading.Thread:
    """Start the work once this process holds the ingest lock; ``on_lost`` if it loses it."""
    leader = Leadership(s.db_url)
    ctx.readiness = Readiness(ctx.store, None, max_lag_s=s.ready_max_lag_s)  # API only
    status = ctx.ingest_status

    def with_role() -> dict[str, Any]:
        role = "active" if leader.held.is_set() else "standby"
        return {**(status() if status else {}), "leadership": role}

    ctx.ingest_status = with_role

    def lead() -> None:
        try:
            if not leader.acquire(stop):
                return
            work.start()
            if not leader.watch(stop):
                on_lost()
        finally:
            leader.release()

    thread = threading.Thread(target=lead, name="leadership", daemon=True)
    thread.start()
    return thread


EXIT_LEADERSHIP_LOST = 3


def run_cloud(s: CloudSettings) -> int:
    try:
        ctx, ingest = build(s)
        dispatcher = _dispatcher(s, ctx)
    except CloudError as exc:
        log.error("%s", exc)
        return 2
    tune_gc()  # full collections made the p99 reading-to-alert latency (cloud_api.runtime)
    stop = threading.Event()
    lost = threading.Event()
    server: uvicorn.Server | None = None
    if s.api_port:
        config = uvicorn.Config(create_app(ctx), host=s.api_host, port=s.api_port,
                                log_level="warning", lifespan="off")
        server = uvicorn.Server(config)

    def on_lost() -> None:  # stop everything: the supervisor restarts this as a standby
        lost.set()
        stop.set()
        if server is not None:
            server.should_exit = True

    work = _Work(s, ctx, ingest, dispatcher, stop)
    leadership = _standby(s, ctx, work, stop, on_lost) if _needs_leadership(s) else None
    if leadership is None:
        work.start()
    try:
        if server is not None:
            server.run()  # returns on SIGINT/SIGTERM
        else:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            while not stop.is_set():
                stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if leadership is not None:  # first: it may be starting the work
            leadership.join(timeout=15)
        work.join()
        ctx.store.close()
    return EXIT_LEADERSHIP_LOST if lost.is_set() else 0
