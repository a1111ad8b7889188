"""InfluxDB adapter: 1.x through its v1 HTTP API, 2.x/3.x through influxdb-client's v2 write.

Which one answers is detected from ``/ping`` (header ``X-Influxdb-Version``). Queries are
InfluxQL for all of them (2.x/3.x accept it on ``/query`` with a token and a DBRP mapping).
No httpx or influxdb-client exception leaves this module: they become ``StoreUnavailable``
(retry later) or ``StoreRejected`` (do not retry the same thing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from cloud_api.errors import StoreRejected, StoreUnavailable

log = logging.getLogger(__name__)


class TimeSeriesStore(Protocol):
    flavour: str

    def write(self, lines: Sequence[str]) -> None: ...

    def query(self, influxql: str) -> list[dict[str, Any]]: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def _series(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for result in body.get("results", []):
        if "error" in result:
            raise StoreRejected(f"InfluxQL error: {result['error']}")
        out.extend(result.get("series", []))
    return out


class _HttpStore:
    flavour = "?"

    def __init__(self, url: str, database: str, headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers or {})

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def query(self, influxql: str) -> list[dict[str, Any]]:
        try:
            resp = self._http.post("/query", params={"db": self.database, "epoch": "ns"},
                                   data={"q": influxql})
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB query failed: {exc}") from exc
        if resp.status_code >= 500:
            raise StoreUnavailable(f"InfluxDB query: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise StoreRejected(f"InfluxDB query: HTTP {resp.status_code} {resp.text[:200]}"
                                ) from exc
        if resp.status_code >= 400:
            raise StoreRejected(f"InfluxDB query: {body.get('error', resp.text[:200])}")
        return _series(body)

    def close(self) -> None:
        self._http.close()


class InfluxV1(_HttpStore):
    """InfluxDB 1.x: ``/write`` with line protocol, database created if missing."""

    flavour = "1.x"

    def __init__(self, url: str, database: str, timeout: float = 10.0) -> None:
        super().__init__(url, database, timeout=timeout)

    def ensure_database(self) -> None:
        try:
            resp = self._http.post("/query", data={"q": f'CREATE DATABASE "{self.database}"'})
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise StoreUnavailable(f"cannot create database: HTTP {resp.status_code}")

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        try:
            resp = self._http.post("/write", params={"db": self.database, "precision": "ns"},
                                   content="\n".join(lines).encode())
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB write failed: {exc}") from exc
        if resp.status_code == 204:
            return
        if resp.status_code == 404 and "database not found" in resp.text:
            self.ensure_database()
            raise StoreUnavailable("database was missing; created it, retry the write")
        if 400 <= resp.status_code < 500:
            raise StoreRejected(f"InfluxDB refused the write: {resp.text[:300]}")
        raise StoreUnavailable(f"InfluxDB write: HTTP {resp.status_code} {resp.text[:200]}")


class InfluxV2(_HttpStore):
    """InfluxDB 2.x/3.x: writes through influxdb-client, InfluxQL through ``/query``.

    Not exercised by the test suite: Debian ships only 1.x and nothing else may be fetched
    here. The v1-compatibility ``/query`` needs a DBRP mapping from the bucket to a database.
    """

    flavour = "2.x"

    def __init__(self, url: str, bucket: str, token: str, org: str, timeout: float = 10.0
                 ) -> None:
        super().__init__(url, bucket, headers={"Authorization": f"Token {token}"},
                         timeout=timeout)
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._client = InfluxDBClient(url=url, token=token, org=org,
                                      timeout=int(timeout * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self.org = org

    def ensure_database(self) -> None:
        """Buckets are provisioned by the operator on 2.x/3.x; nothing to do."""

    def write(self, lines: Sequence[str]) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        if not lines:
            return
        try:
            self._write.write(bucket=self.database, org=self.org, record=list(lines),
                              write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status is not None and 400 <= int(exc.status) < 500 and exc.status != 429:
                raise StoreRejected(f"InfluxDB refused the write: {exc.body}") from exc
            raise StoreUnavailable(f"InfluxDB write: HTTP {exc.status}") from exc
        except (Urllib3Error, OSError) as exc:
            raise StoreUnavailable(f"InfluxDB write failed: {exc}") from exc

    def close(self) -> None:
        super().close()
        self._client.close()  # type: ignore[no-untyped-call]


def detect_version(url: str, timeout: float = 5.0) -> str:
    """The ``X-Influxdb-Version`` of the server at ``url``; StoreUnavailable if silent."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/ping", timeout=timeout)
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"InfluxDB at {url} does not answer: {exc}") from exc
    version = resp.headers.get("X-Influxdb-Version", "")
    if resp.status_code != 204 or not version:
        raise StoreUnavailable(f"{url} is not InfluxDB (ping: HTTP {resp.status_code})")
    return str(version)


def connect_store(url: str, database: str, token: str | None = None, org: str = "vigie"
                  ) -> InfluxV1 | InfluxV2:
    version = detect_version(url)
    if version.lstrip("v").startswith("1."):
        store: InfluxV1 | InfluxV2 = InfluxV1(url, database)
    else:
        if not token:
            raise StoreRejected(f"InfluxDB {version} at {url} needs a token (--influx-token)")
        store = InfluxV2(url, database, token, org)
    store.ensure_database()
    log.info("InfluxDB %s at %s (%s API)", version, url, store.flavour)
    return store
