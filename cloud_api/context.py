"""What the HTTP API is built on: stores, sessions, token issuer, ingest status, readiness."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from cloud_api.influx import TimeSeriesStore
from cloud_api.readiness import IngestView, Readiness, Report
from cloud_api.security import TokenIssuer, load_secret
from cloud_api.series import DAY_ZONE


def _ephemeral_tokens() -> TokenIssuer:
    return TokenIssuer(load_secret(None))


@dataclass
class ApiContext:
    store: TimeSeriesStore
    sessions: sessionmaker[Session]
    ingest_status: Callable[[], dict[str, Any]] | None = None
    # The ingest worker of this process (None: API only), read by /metrics at scrape time.
    ingest: IngestView | None = None
    # The checks of /ready (cloud_api.readiness); left None: InfluxDB's alone.
    readiness: Callable[[], Report] | None = None
    tokens: TokenIssuer = field(default_factory=_ephemeral_tokens)
    # Zone of the daily summaries (time in range, weight baseline): days run from local
    # midnight to local midnight there (``vigie cloud run --day-zone``).
    day_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DAY_ZONE))

    def __post_init__(self) -> None:
        if self.readiness is None:
            self.readiness = Readiness(self.store)
