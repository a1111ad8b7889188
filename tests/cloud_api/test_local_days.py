"""Daily summaries per local day of the deployment's zone, against the real InfluxDB.

The fake store of ``api_kit`` ignores ``GROUP BY``, so the ``tz()`` grouping is checked on the
InfluxDB the project starts. Readings sit around midnight on a winter night, on the night
France springs forward (29 March 2026, a 23-hour day) and on the night it falls back
(25 October 2026, a 25-hour day). Each reading's value is a distinct power of two, so a day's
sum says exactly which readings landed in it. Expected days are written out by hand.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cloud_api import accounts, series
from cloud_api.api import ApiContext, create_app
from cloud_api.app import CloudSettings, build, zone_of
from cloud_api.db import make_engine, make_sessions
from cloud_api.errors import ConfigError
from cloud_api.influx import InfluxV1
from cloud_api.points import MEASUREMENT, ns
from cloud_api.security import TokenIssuer
from cloud_api.tenancy import register_patient
from tests.dbkit import database_url
from vigie.services import Services

with warnings.catch_warnings():  # as in api_kit: starlette asks for httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

PARIS, REUNION, CAYENNE = (ZoneInfo(z) for z in ("Europe/Paris", "Indian/Reunion",
                                                  "America/Cayenne"))
SITE = "site-tz"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# label -> UTC time; comments: Paris / Reunion (UTC+4) / Cayenne (UTC-3) local times
NIGHTS = {
    "D": _utc("2026-01-14T19:30"),  # 20:30 Jan 14 / 23:30 Jan 14 / 16:30 Jan 14
    "E": _utc("2026-01-14T20:30"),  # 21:30 Jan 14 / 00:30 Jan 15 / 17:30 Jan 14
    "A": _utc("2026-01-14T22:30"),  # 23:30 Jan 14 / 02:30 Jan 15 / 19:30 Jan 14
    "B": _utc("2026-01-14T23:30"),  # 00:30 Jan 15 / 03:30 Jan 15 / 20:30 Jan 14
    "C": _utc("2026-01-15T00:30"),  # 01:30 Jan 15 / 04:30 Jan 15 / 21:30 Jan 14
    # spring forward: Paris 02:00 CET -> 03:00 CEST at 01:00 UTC on 29 March
    "F": _utc("2026-03-28T22:30"),  # 23:30 Mar 28 / 02:30 Mar 29 / 19:30 Mar 28
    "G": _utc("2026-03-28T23:30"),  # 00:30 Mar 29 / 03:30 Mar 29 / 20:30 Mar 28
    "H": _utc("2026-03-29T00:30"),  # 01:30 Mar 29 / 04:30 Mar 29 / 21:30 Mar 28
    "I": _utc("2026-03-29T21:30"),  # 23:30 Mar 29 / 01:30 Mar 30 / 18:30 Mar 29
    "J": _utc("2026-03-29T22:30"),  # 00:30 Mar 30 / 02:30 Mar 30 / 19:30 Mar 29
    # fall back: Paris 03:00 CEST -> 02:00 CET at 01:00 UTC on 25 October
    "K": _utc("2026-10-24T22:30"),  # 00:30 Oct 25 / 02:30 Oct 25 / 19:30 Oct 24
    "L": _utc("2026-10-25T22:30"),  # 23:30 Oct 25 / 02:30 Oct 26 / 19:30 Oct 25
    "M": _utc("2026-10-25T23:30"),  # 00:30 Oct 26 / 03:30 Oct 26 / 20:30 Oct 25
}
VALUE = {label: float(2 ** i) for i, label in enumerate(NIGHTS)}
EXPECTED = {
    "Europe/Paris": {"2026-01-14": "DEA", "2026-01-15": "BC", "2026-03-28": "F",
                     "2026-03-29": "GHI", "2026-03-30": "J", "2026-10-25": "KL",
                     "2026-10-26": "M"},
    "Indian/Reunion": {"2026-01-14": "D", "2026-01-15": "EABC", "2026-03-29": "FGH",
                       "2026-03-30": "IJ", "2026-10-25": "K", "2026-10-26": "LM"},
    "America/Cayenne": {"2026-01-14": "DEABC", "2026-03-28": "FGH", "2026-03-29": "IJ",
                        "2026-10-24": "K", "2026-10-25": "LM"},
}


def _line(patient: str, kind: str, at: datetime, value: float) -> str:
    return f"{MEASUREMENT},patient={patient},kind={kind},site={SITE} value={value!r} {ns(at)}"


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, InfluxV1]]:
    with Services(tmp_path_factory.mktemp("tz") / "run") as svc:
        store = InfluxV1(svc.influx.url, "localdays")
        store.ensure_database()
        store.write([_line("p-nights", "glucose", t, VALUE[k]) for k, t in NIGHTS.items()])
        yield svc, store
        store.close()


@pytest.mark.parametrize("zone", list(EXPECTED))
def test_readings_around_midnight_land_in_their_local_day(
        influx: tuple[Services, InfluxV1], zone: str) -> None:
    _, store = influx
    got = series.daily(store, "p-nights", "glucose", _utc("2026-01-01T00:00"),
                       _utc("2026-12-01T00:00"), SITE, zone=ZoneInfo(zone))
    want = {day: (sum(VALUE[k] for k in labels), len(labels))
            for day, labels in EXPECTED[zone].items()}
    assert got == want


def test_time_in_range_counts_a_night_hypo_in_the_day_it_happened(
        influx: tuple[Services, InfluxV1]) -> None:
    _, store = influx
    night = [("2026-03-28T22:30", 100.0),  # Paris 23:30 Mar 28: in range
             ("2026-03-28T23:30", 55.0),   # Paris 00:30 Mar 29 (CET): hypo of the 29th
             ("2026-03-29T21:30", 250.0),  # Paris 23:30 Mar 29 (CEST): still the 29th
             ("2026-03-29T22:30", 60.0)]   # Paris 00:30 Mar 30: hypo of the 30th
    store.write([_line("p-tir", "glucose", _utc(t), v) for t, v in night])
    start, end = _utc("2026-03-28T00:00"), _utc("2026-03-31T00:00")
    assert series.time_in_range(store, "p-tir", start, end, SITE, 70.0, 180.0,
                                zone=PARIS) == [
        {"day": "2026-03-28", "n": 1, "below": 0, "in_range": 1, "above": 0},
        {"day": "2026-03-29", "n": 2, "below": 1, "in_range": 0, "above": 1},
        {"day": "2026-03-30", "n": 1, "below": 1, "in_range": 0, "above": 0}]
    assert [d["day"] for d in series.time_in_range(store, "p-tir", start, end, SITE, 70.0,
                                                   180.0, zone=REUNION)] == [
        "2026-03-29", "2026-03-30"]  # 02:30, 03:30 on the 29th; 01:30, 02:30 on the 30th


def test_baseline_band_walks_local_days_across_both_dst_changes() -> None:
    days = {"2026-03-27": (240.0, 3), "2026-10-24": (270.0, 3)}
    spring = series.baseline_band(days, _utc("2026-03-28T12:00"), _utc("2026-03-31T00:00"),
                                  window_days=4, half_width=2.0, zone=PARIS)
    assert [(b["day"], b["t"]) for b in spring] == [
        ("2026-03-28", "2026-03-27T23:00:00.000000Z"),  # CET midnight
        ("2026-03-29", "2026-03-28T23:00:00.000000Z"),  # 23-hour day
        ("2026-03-30", "2026-03-29T22:00:00.000000Z"),  # CEST midnight
        ("2026-03-31", "2026-03-30T22:00:00.000000Z")]
    assert {(b["mean"], b["low"], b["high"]) for b in spring} == {(80.0, 78.0, 82.0)}
    autumn = series.baseline_band(days, _utc("2026-10-25T00:00"), _utc("2026-10-26T23:30"),
                                  window_days=1, half_width=2.0, zone=PARIS)
    assert [(b["day"], b["t"]) for b in autumn] == [
        ("2026-10-25", "2026-10-24T22:00:00.000000Z")]  # the 26th's window is empty
    autumn = series.baseline_band(days, _utc("2026-10-25T00:00"), _utc("2026-10-26T23:30"),
                                  window_days=2, half_width=2.0, zone=PARIS)
    assert [b["t"] for b in autumn] == ["2026-10-24T22:00:00.000000Z",
                                        "2026-10-25T23:00:00.000000Z"]  # 25-hour day


@contextlib.contextmanager
def _serve(store: InfluxV1, tmp_path: Path, zone: str) -> Iterator[tuple[TestClient, str]]:
    """The API on the real store, with one nurse of SITE and the patient p-page."""
    engine = make_engine(database_url(tmp_path, zone.replace("/", "-")))
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        accounts.add_user(session, "nurse-tz", "pw for the tz test", "nurse", [SITE],
                          create_sites=True)
        register_patient(session, "p-page", SITE)
    ctx = ApiContext(store=store, sessions=sessions, tokens=TokenIssuer(b"z" * 48),
                     day_zone=zone_of(zone))
    with TestClient(create_app(ctx)) as client:
        resp = client.post("/token", data={"username": "nurse-tz",
                                           "password": "pw for the tz test"})
        yield client, resp.json()["access_token"]
    engine.dispose()


def test_the_trend_route_uses_the_deployment_zone(
        influx: tuple[Services, InfluxV1], tmp_path: Path) -> None:
    _, store = influx
    # Reunion (UTC+4): weighings at 00:30 local on Jan 11, 12, 13 (80 kg) and Jan 14 (90 kg);
    # glucose at 23:30 Jan 14 (hypo), 00:30 Jan 15 (high), 01:30 Jan 15 (in range).
    store.write([_line("p-page", "weight", _utc(f"2026-01-{d}T20:30"), 80.0)
                 for d in (10, 11, 12)] +
                [_line("p-page", "weight", _utc("2026-01-13T20:30"), 90.0)] +
                [_line("p-page", "glucose", _utc(t), v) for t, v in (
                    ("2026-01-14T19:30", 60.0), ("2026-01-14T20:30", 250.0),
                    ("2026-01-14T21:30", 100.0))])
    params = {"start": "2026-01-14T00:00:00Z", "end": "2026-01-15T19:00:00Z"}  # 23:00 local
    with _serve(store, tmp_path, "Indian/Reunion") as (client, token):
        body = client.get("/patients/p-page/trend", params=params,
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert body["day_zone"] == "Indian/Reunion"
    assert body["time_in_range"] == [
        {"day": "2026-01-14", "n": 1, "below": 1, "in_range": 0, "above": 0},
        {"day": "2026-01-15", "n": 2, "below": 0, "in_range": 1, "above": 1}]
    # the 90 kg of 00:30 on the 14th belongs to the 14th: not in that day's 28-day window
    assert [(b["day"], b["t"], b["mean"]) for b in body["weight_baseline"]] == [
        ("2026-01-14", "2026-01-13T20:00:00.000000Z", 80.0),
        ("2026-01-15", "2026-01-14T20:00:00.000000Z", 82.5)]
    with _serve(store, tmp_path, "Europe/Paris") as (client, token):
        body = client.get("/patients/p-page/trend", params=params,
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert [d["day"] for d in body["time_in_range"]] == ["2026-01-14"]  # 20:30 to 22:30


def test_the_cloud_builds_its_api_with_the_configured_zone(
        influx: tuple[Services, InfluxV1], tmp_path: Path) -> None:
    svc, _ = influx
    ctx, ingest = build(CloudSettings(influx_url=svc.influx.url, influx_db="localdays",
                                      db_url=database_url(tmp_path),
                                      secret_file=str(tmp_path / "api-secret"),
                                      ingest=False, day_zone="America/Cayenne"))
    assert ingest is None and ctx.day_zone == CAYENNE
    ctx.store.close()
    ctx.sessions.kw["bind"].dispose()


@pytest.mark.parametrize("name", ["Nowhere/Land", "Europe/Pari", "", "../etc/passwd",
                                  "Europe/Paris'); DROP DATABASE x"])
def test_an_unknown_zone_is_refused_by_the_settings(name: str) -> None:
    with pytest.raises(ConfigError, match="--day-zone: unknown time zone"):
        CloudSettings(day_zone=name)


def test_an_unknown_zone_is_refused_by_the_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "vigie", "cloud", "run", "--day-zone",
                          "Mars/Olympus_Mons", "--influx", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--day-zone" in out.stderr and "Mars/Olympus_Mons" in out.stderr
    assert "Traceback" not in out.stderr


def test_local_days_are_whole_calendar_days() -> None:
    assert series.day_start(date(2026, 3, 29), PARIS) + timedelta(hours=23) == \
        series.day_start(date(2026, 3, 30), PARIS)
    assert series.day_start(date(2026, 10, 25), PARIS) + timedelta(hours=25) == \
        series.day_start(date(2026, 10, 26), PARIS)
    assert series.local_day(_utc("2026-01-14T23:30"), PARIS) == date(2026, 1, 15)
    assert series.local_day(_utc("2026-01-14T19:30"), REUNION) == date(2026, 1, 14)
