"""The API's security through the real ``vigie cloud run`` process and real InfluxDB."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_api.client import PasswordAuth
from tests.conftest import VIGIE, Cloud, add_user, wait_for, write_replay
from vigie.services import Services

pytestmark = pytest.mark.integration
START = {"start": "2026-01-01T00:00:00Z"}


def _client(cloud: Cloud, username: str, password: str) -> httpx.Client:
    return httpx.Client(base_url=str(cloud.api.base_url), timeout=10,
                        auth=PasswordAuth(username, password))


def _site_1_readings(cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> None:
    replay = tmp_path / "r.jsonl"
    write_replay(replay, 30, devices=1)
    gw = gateway_factory("gw-s1", replay, patients={"dev-0": "p-0"}).start()  # site-1
    assert gw.wait(60) == 0, gw.log()
    wait_for(lambda: len(cloud.ids()) == 30, 30, "30 readings stored")


def test_tokens_tenancy_and_audit_through_the_real_process(
        services: Services, cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> None:
    with httpx.Client(base_url=str(cloud.api.base_url), timeout=10) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/alerts").status_code == 401
        bad = anonymous.post("/token", data={"username": cloud.username, "password": "nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "incorrect username or password"
    secret = tmp_path / "vigie-api-secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600, "generated beside the database"

    password = tmp_path / "pw"
    password.write_text("nurse of another site\n")
    out = subprocess.run([*VIGIE, "users", "add", "nurse-x", "--role", "nurse", "--site",
                          "site-x", "--password-file", str(password), "--db-url",
                          cloud.db_url], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    _site_1_readings(cloud, gateway_factory, tmp_path)

    assert len(cloud.api.get("/patients/p-0/observations", params=START).json()) == 30
    with _client(cloud, "nurse-x", "nurse of another site") as other:
        assert other.get("/patients/p-0/observations", params=START).status_code == 404
        assert other.get("/gateways").json() == []
        assert other.get("/alerts").json() == []
        assert other.get("/quarantine").status_code == 403
    rows = cloud.api.get("/audit", params={"patient": "p-0"}).json()
    assert [(r["username"], r["action"], r["outcome"]) for r in rows] == [
        ("nurse-x", "observations.read", "not_found"),
        (cloud.username, "observations.read", "ok")]


def test_staff_of_the_gateways_site_see_its_patients(
        services: Services, cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> None:
    add_user(cloud.db_url, "nurse-1", "nurse of site one", "nurse", "site-1")
    _site_1_readings(cloud, gateway_factory, tmp_path)
    with _client(cloud, "nurse-1", "nurse of site one") as nurse:
        obs = nurse.get("/patients/p-0/observations", params=START)
        assert obs.status_code == 200 and len(obs.json()) == 30
        assert [g["id"] for g in nurse.get("/gateways").json()] == ["gw-s1"]
