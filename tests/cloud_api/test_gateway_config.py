"""Device lists for gateways: versioned with each device change, published once acknowledged
(the MQTT round trip runs in tests/integration/test_device_assignment.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud_api.db import GatewayConfig
from cloud_api.gateway_config import ConfigPublisher
from tests.cloud_api.api_kit import Api
from vigie.contract import DeviceAssignment, GatewayDevices, decode_gateway_devices, now_utc
from vigie.mqtt import Delivery


def _versions(api: Api) -> dict[str, tuple[int, int]]:
    with api.session() as session:
        return {r.gateway_id: (r.version, r.published_version)
                for r in session.query(GatewayConfig)}


def test_device_changes_bump_the_gateways_they_touch(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    gw2 = api.client.post("/gateways", json={"id": "gw-alpha-2", "site": "site-alpha"},
                          headers=nurse)
    assert gw2.status_code == 201, gw2.text
    created = api.client.post("/devices", headers=nurse, json={
        "id": "dev-9", "site": "site-alpha", "gateway": "gw-alpha", "patient": "p-alpha-1"})
    assert created.status_code == 201, created.text
    (v1, published), = _versions(api).values()
    assert list(_versions(api)) == ["gw-alpha"] and v1 > 0 and published == 0
    moved = api.client.put(f"/devices/{api.alpha.device}", headers=nurse,
                           json={"gateway": "gw-alpha-2", "patient": "p-alpha-1"})
    assert moved.status_code == 200, moved.text
    after = _versions(api)
    assert after["gw-alpha"][0] > v1 and after["gw-alpha-2"][0] > 0
    assert after["gw-alpha"][1] == after["gw-alpha-2"][1] == 0
    refused = api.client.put("/devices/dev-9", headers=nurse,
                             json={"gateway": "gw-alpha", "patient": "p-alpha-1",
                                   "shared": True})
    assert refused.status_code == 409
    assert _versions(api) == after, "rolled back"


def test_versions_only_grow_even_from_a_restored_database(api: Api) -> None:
    """Versions are milliseconds of the change: a database restored or recreated (its
    counters gone) still publishes lists newer than what the gateways applied."""
    from cloud_api.gateway_config import bump

    with api.session() as session, session.begin():
        session.add(GatewayConfig(gateway_id="gw-alpha", version=10**15, published_version=0,
                                  changed_at=now_utc()))
    with api.session() as session, session.begin():
        bump(session, ["gw-alpha"])  # the clock is behind that: one more than the last
    assert _versions(api)["gw-alpha"][0] == 10**15 + 1
    with api.session() as session, session.begin():
        session.delete(session.get(GatewayConfig, "gw-alpha"))
    with api.session() as session, session.begin():
        bump(session, ["gw-alpha"])  # recreated: now, in milliseconds
    assert _versions(api)["gw-alpha"][0] > 1_700_000_000_000


@dataclass
class _Client:
    """Stands in for ``vigie.mqtt.MqttClient``; a test resolves each ``Delivery`` as the
    client's ``on_publish`` would."""

    sent: list[tuple[str, bytes, int, bool, Delivery]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 1,
                retain: bool = False) -> Delivery:
        delivery = Delivery(None, topic)
        delivery.mid = len(self.sent) + 1
        self.sent.append((topic, payload, qos, retain, delivery))
        return delivery


def _step(pub: ConfigPublisher, connected: bool = True) -> None:
    pub._next_poll = 0.0  # no waiting for the poll period in a test
    pub.step(connected)


def test_lists_are_published_and_marked_once_acknowledged(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    resp = api.client.put(f"/devices/{api.alpha.device}", headers=nurse,
                          json={"gateway": "gw-alpha", "shared": True})
    assert resp.status_code == 200, resp.text
    client = _Client()
    pub = ConfigPublisher(api.ctx.sessions, client)
    _step(pub, connected=False)
    assert client.sent == [], "nothing published while the broker is away"
    _step(pub)
    _step(pub)  # still in flight: not published twice
    assert len(client.sent) == 1
    topic, payload, qos, retain, info = client.sent[0]
    assert (topic, qos, retain) == ("vigie/v1/gateways/gw-alpha/config/devices", 1, True)
    (v1, _), = _versions(api).values()
    assert decode_gateway_devices(payload, "gw-alpha") == GatewayDevices(
        "gw-alpha", v1, (DeviceAssignment(api.alpha.device, None, shared=True),))
    assert _versions(api) == {"gw-alpha": (v1, 0)}
    info._resolve(None)  # PUBACK Success
    _step(pub)
    assert _versions(api) == {"gw-alpha": (v1, v1)}
    _step(pub)
    assert len(client.sent) == 1, "published once per version"


def test_a_change_made_meanwhile_is_published_after(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    body: dict[str, Any] = {"gateway": "gw-alpha", "patient": "p-alpha-1"}
    api.client.put(f"/devices/{api.alpha.device}", headers=nurse, json=body)
    client = _Client()
    pub = ConfigPublisher(api.ctx.sessions, client)
    _step(pub)
    (v1, _), = _versions(api).values()
    api.client.put(f"/devices/{api.alpha.device}", headers=nurse,
                   json={**body, "patient": None})
    client.sent[0][4]._resolve(None)
    _step(pub)  # the first version acknowledged, the second published
    (v2, published), = _versions(api).values()
    assert v2 > v1 and published == v1
    assert len(client.sent) == 2
    latest = decode_gateway_devices(client.sent[1][1], "gw-alpha")
    assert latest.version == v2 and latest.devices[0].patient_id is None

