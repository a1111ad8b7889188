"""The secure transport profile against a real Mosquitto: TLS only, one certificate per
gateway, ACLs that confine each gateway to its own topics (docs/security.md)."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.conftest import Cloud, GatewayProc, query_db, wait_for, write_replay
from vigie.contract import (
    decode_gateway_devices,
    decode_stored,
    encode_stored,
    observations_topic,
    stored_topic,
)
from vigie.pki import Credential, PkiPaths, init_pki, issue_gateway, issue_service, revoke
from vigie.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

NOT_AUTHORIZED = 0x87
CONFIG_SERVICE = "vigie-config-test"


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Services]:
    svc = Services(tmp_path / "run", secure=True)
    assert svc.pki is not None
    for gw in ("gw-a", "gw-b"):
        issue_gateway(svc.pki, gw)
    issue_service(svc.pki, CONFIG_SERVICE)  # before start: the broker's ACL names services
    with svc:
        yield svc


def _pki(svc: Services) -> PkiPaths:
    assert svc.pki is not None
    return svc.pki


class Peer:
    """A paho MQTT v5 client over TLS that records what the broker answers."""

    def __init__(self, port: int, cred: Credential | None, ca: Path | None = None,
                 will: str | None = None) -> None:
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(ca or (cred.ca if cred else None)),
                            certfile=None if cred is None else str(cred.cert),
                            keyfile=None if cred is None else str(cred.key))
        if will:
            self.client.will_set(will, b'{"state": "offline"}', qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.port = port

    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, rc: ReasonCode,
                    p: Properties | None) -> None:
        self.connack = rc

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, rc: ReasonCode,
                    p: Properties | None) -> None:
        self.pubacks[mid] = rc.value

    def _on_subscribe(self, c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode],
                      p: Properties | None) -> None:
        self.subacks[mid] = [r.value for r in rcs]

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def connect(self, timeout: float = 5.0) -> bool:
        """True when the broker accepted the connection (CONNACK success) in time."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=10)
        except OSError:  # handshake refused: ssl.SSLError and resets are OSErrors
            sock = self.client.socket()
            if sock is not None:
                sock.close()
            return False
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while self.connack is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connack is not None and not self.connack.is_failure

    def die(self) -> None:
        """Stop the network loop and close the socket without DISCONNECT, as a crash would."""
        self.client.loop_stop()
        sock = self.client.socket()
        assert sock is not None
        sock.close()

    def publish(self, topic: str, payload: bytes) -> int:
        mid = self.client.publish(topic, payload, qos=1).mid
        wait_for(lambda: mid in self.pubacks, 5, f"PUBACK {mid}")
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> list[int]:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return list(wait_for(lambda: self.subacks.get(mid), 5, f"SUBACK {mid}"))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for p in made:
        p.close()


def _peer(peers: list[Peer], svc: Services, cred: Credential | None, **kw: Any) -> Peer:
    peer = Peer(svc.mosquitto.port, cred, **kw)
    peers.append(peer)
    return peer


def _batch(gateway: str, rid: str, seq: int = 1) -> bytes:
    reading = {"id": rid, "device": "d1", "patient": "p1", "seq": seq, "kind": "glucose",
               "value": 120.0, "unit": "mg/dL", "measured_at": "2026-11-01T10:00:00Z",
               "received_at": "2026-11-01T10:00:01Z", "device_time": None,
               "clock_offset_s": 0, "tz": None, "time_trusted": True, "flags": []}
    return json.dumps({"v": 1, "gateway": gateway, "sent_at": "2026-11-01T10:00:02Z",
                       "readings": [reading]}).encode()


def test_plain_text_connections_are_refused(secure: Services) -> None:
    connect = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([5, 2, 0, 30, 0, 0, 0])  # v5 CONNECT
    with socket.create_connection(("127.0.0.1", secure.mosquitto.port), timeout=5) as sock:
        sock.sendall(connect)
        try:
            answer = sock.recv(16)
        except ConnectionResetError:
            answer = b""
    assert answer[:1] != b"\x20", "the broker answered a plain-text CONNECT with a CONNACK"
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    acks: list[ReasonCode] = []
    plain.on_connect = lambda c, u, f, rc, p: acks.append(rc)
    plain.connect("127.0.0.1", secure.mosquitto.port)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and plain.loop(0.1) == mqtt.MQTT_ERR_SUCCESS:
        pass
    assert acks == [], "a plain paho client got a CONNACK"


def _secure_gateway(svc: Services, workdir: Path, gateway_id: str, replay: Path) -> GatewayProc:
    gw = GatewayProc(workdir, svc, gateway_id, replay)
    cred = _pki(svc).gateway(gateway_id)
    tls = f'[mqtt]\ntls_ca = "{cred.ca}"\ntls_cert = "{cred.cert}"\ntls_key = "{cred.key}"\n'
    gw.config.write_text(gw.config.read_text().replace("[mqtt]\n", tls, 1))
    return gw


def test_gateway_readings_are_ingested_end_to_end(secure: Services, tmp_path: Path) -> None:
    cloud = Cloud(secure, tmp_path).register("gw-a").start()
    gw = _secure_gateway(secure, tmp_path / "gw-a", "gw-a", tmp_path / "r.jsonl")
    try:
        write_replay(tmp_path / "r.jsonl", 300)
        gw.start()
        assert gw.wait(15) == 0, gw.log()
        ids = wait_for(lambda: len(got := cloud.ids()) >= 300 and got, 10, "300 readings stored")
        with sqlite3.connect(gw.workdir / "outbox.sqlite3") as db:
            taken = {r[0] for r in db.execute("SELECT id FROM seen")}
        assert len(ids) == len(set(ids)) == 300 and set(ids) == taken
        assert "connected to broker" in gw.log()
    finally:
        gw.stop()
        cloud.stop()
        cloud.close()


def test_gateway_cannot_publish_as_another(secure: Services, tmp_path: Path,
                                           peers: list[Peer]) -> None:
    cloud = Cloud(secure, tmp_path).register("gw-a", "p1").register("gw-b", "p1").start()
    try:
        forger = _peer(peers, secure, _pki(secure).gateway("gw-a"))
        assert forger.connect()
        forged, own = "f" * 32, "a" * 32
        for topic in (observations_topic("gw-b"), "vigie/v1/gateways/gw-b/status"):
            assert forger.publish(topic, _batch("gw-b", forged)) == NOT_AUTHORIZED
            # Mosquitto 2.0.11 also closes the connection after a refused QoS 1 publish.
            forger.close()
            forger = _peer(peers, secure, _pki(secure).gateway("gw-a"))
            assert forger.connect()
        assert forger.publish(observations_topic("gw-a"), _batch("gw-a", own)) == 0
        wait_for(lambda: own in cloud.ids(), 10, "gw-a's own reading stored")
        time.sleep(0.5)
        assert cloud.ids() == [own], "nothing published as gw-b reached InfluxDB"
    finally:
        cloud.stop()
        cloud.close()


def test_gateway_last_will_only_on_its_own_status(secure: Services,
                                                  peers: list[Peer]) -> None:
    """A will on another gateway's status topic is not published when the client dies."""
    pki = _pki(secure)
    ingest = _peer(peers, secure, pki.service("vigie-ingest-1"))
    assert ingest.connect()
    ingest.subscribe("vigie/v1/gateways/+/status")
    liar = _peer(peers, secure, pki.gateway("gw-a"), will="vigie/v1/gateways/gw-b/status")
    if liar.connect():
        liar.die()  # without DISCONNECT: the broker would send the will
    honest = _peer(peers, secure, pki.gateway("gw-b"), will="vigie/v1/gateways/gw-b/status")
    assert honest.connect()
    honest.die()
    wait_for(lambda: ingest.messages, 10, "gw-b's own last will")
    time.sleep(0.3)
    assert [t for t, _ in ingest.messages] == ["vigie/v1/gateways/gw-b/status"]


def test_gateway_cannot_read_another_gateways_data(secure: Services,
                                                   peers: list[Peer]) -> None:
    pki = _pki(secure)
    cloud_side = _peer(peers, secure, pki.service(CONFIG_SERVICE))
    a = _peer(peers, secure, pki.gateway("gw-a"))
    b = _peer(peers, secure, pki.gateway("gw-b"))
    assert cloud_side.connect() and a.connect() and b.connect()
    for topic in ("vigie/v1/gateways/gw-b/config/#", "vigie/v1/gateways/+/config/#",
                  "vigie/v1/gateways/gw-b/observations", "vigie/v1/gateways/+/observations",
                  "vigie/v1/gateways/gw-b/status", "#"):
        codes = a.subscribe(topic)
        # Mosquitto 2.0.11 grants the filter and filters each delivery; later ones refuse.
        assert codes in ([1], [NOT_AUTHORIZED]), (topic, codes)
    assert a.subscribe("vigie/v1/gateways/gw-a/config/#") == [1]
    assert b.subscribe("vigie/v1/gateways/gw-b/config/#") == [1]
    for gw in ("gw-a", "gw-b"):
        mid = cloud_side.client.publish(f"vigie/v1/gateways/{gw}/config/rules", gw.encode(),
                                        qos=1, retain=True)
        mid.wait_for_publish(5)
    assert b.publish(observations_topic("gw-b"), _batch("gw-b", "b" * 32)) == 0
    wait_for(lambda: b.messages, 5, "gw-b's config delivered to gw-b")
    wait_for(lambda: a.messages, 5, "gw-a's config delivered to gw-a")
    time.sleep(0.5)
    assert set(b.messages) == {("vigie/v1/gateways/gw-b/config/rules", b"gw-b")}
    # one copy per matching subscription (gw-a/config/#, +/config/#, #): all its own
    assert set(a.messages) == {("vigie/v1/gateways/gw-a/config/rules", b"gw-a")}, \
        "gw-a received only its own configuration"


def test_only_services_confirm_readings_and_each_gateway_hears_its_own(
        secure: Services, peers: list[Peer]) -> None:
    """A ``stored`` confirmation makes a gateway delete readings from its outbox: services
    may send one to any gateway, no gateway may send one (for another or for itself), and a
    gateway receives only its own."""
    pki = _pki(secure)
    ingest = _peer(peers, secure, pki.service("vigie-ingest-1"))
    a = _peer(peers, secure, pki.gateway("gw-a"))
    b = _peer(peers, secure, pki.gateway("gw-b"))
    assert ingest.connect() and a.connect() and b.connect()
    assert a.subscribe(stored_topic("gw-a")) == [1]
    assert b.subscribe(stored_topic("gw-b")) == [1]
    assert a.subscribe(stored_topic("gw-b")) in ([1], [NOT_AUTHORIZED])  # filtered, if granted
    assert a.subscribe("vigie/v1/gateways/+/stored") in ([1], [NOT_AUTHORIZED])
    for gw, rid in (("gw-a", "a" * 32), ("gw-b", "b" * 32)):
        assert ingest.publish(stored_topic(gw), encode_stored(gw, [rid])) == 0
    wait_for(lambda: a.messages and b.messages, 5, "each gateway's confirmation")
    for gw, forged in (("gw-b", "f" * 32), ("gw-a", "e" * 32)):  # for another, for itself
        forger = _peer(peers, secure, pki.gateway("gw-a"))
        assert forger.connect()
        assert forger.publish(stored_topic(gw), encode_stored(gw, [forged])) == NOT_AUTHORIZED
    time.sleep(0.5)
    # one copy per matching subscription of gw-a (its own topic and the wildcard)
    assert {(t, decode_stored(p, "gw-a")) for t, p in a.messages} == \
        {(stored_topic("gw-a"), ("a" * 32,))}
    assert [(t, decode_stored(p, "gw-b")) for t, p in b.messages] == \
        [(stored_topic("gw-b"), ("b" * 32,))]


def _foreign(tmp_path: Path) -> Credential:
    other = init_pki(tmp_path / "foreign-pki")
    return issue_gateway(other, "gw-a")


@pytest.mark.parametrize("case", ["foreign CA", "no certificate", "broker certificate",
                                  "revoked"])
def test_unauthenticated_clients_cannot_connect(secure: Services, tmp_path: Path,
                                                peers: list[Peer], case: str) -> None:
    pki = _pki(secure)
    if case == "foreign CA":
        cred: Credential | None = _foreign(tmp_path)
    elif case == "broker certificate":
        cred = Credential("vigie-broker", pki.ca_cert, pki.broker_cert, pki.broker_key)
    elif case == "revoked":
        cred = issue_gateway(pki, "gw-revoked")
        assert _peer(peers, secure, cred).connect(), "valid before revocation"
        revoke(pki, cred.cert)
        secure.mosquitto.restart()
    else:
        cred = None
    peer = _peer(peers, secure, cred, ca=pki.ca_cert)
    assert not peer.connect(timeout=3), f"{case}: connected"
    log = (secure.mosquitto.dir / "mosquitto.log").read_text(errors="replace")
    assert "certificate" in log.lower() or "OpenSSL Error" in log


def test_client_refuses_a_broker_from_another_ca(secure: Services, tmp_path: Path) -> None:
    """The gateway's side of the handshake (paho uses this same SSLContext setup)."""
    foreign = _foreign(tmp_path)
    ctx = ssl.create_default_context(cafile=str(foreign.ca))
    ctx.load_cert_chain(foreign.cert, foreign.key)
    with socket.create_connection(("127.0.0.1", secure.mosquitto.port), timeout=5) as sock, \
            pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname="127.0.0.1").close()


def test_headless_demo_runs_in_the_secure_profile(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vigie", "demo", "--headless", "--secure", "--duration", "4",
         "--speed", "60000", "--gateways", "2", "--patients", "2"],
        capture_output=True, text=True, timeout=19, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["observations_sent"] > 10
    assert summary["lost"] == 0 and summary["duplicates"] == 0
    assert "TLS only" in out.stderr and "PKI" in out.stderr


def _list_versions(db_url: str, gateway: str) -> tuple[int, int] | None:
    rows = query_db(db_url, "SELECT version, published_version FROM gateway_config "
                    "WHERE gateway_id = :gateway", gateway=gateway)
    return None if not rows else (int(rows[0][0]), int(rows[0][1]))


@pytest.mark.timeout(60)  # two cloud starts
def test_device_lists_under_the_acl_refused_then_delivered(secure: Services, tmp_path: Path,
                                                           peers: list[Peer]) -> None:
    """A cloud whose certificate may not write gateway configuration (here a gateway's
    own) gets PUBACK "not authorized" for a device list: paho still calls that published,
    so the worker must not mark it, and says why. The same database served with the
    service's certificate then delivers it, retained, to the gateway, and only to it."""
    pki = _pki(secure)
    gw_a = _peer(peers, secure, pki.gateway("gw-a"))
    gw_b = _peer(peers, secure, pki.gateway("gw-b"))
    assert gw_a.connect() and gw_b.connect()
    assert gw_a.subscribe("vigie/v1/gateways/gw-a/config/devices") == [1]
    wrong = Cloud(secure, tmp_path)
    cred = pki.gateway("gw-b")  # may read its own configuration, write no one's
    wrong.extra_args = ["--mqtt-ca", str(cred.ca), "--mqtt-cert", str(cred.cert),
                        "--mqtt-key", str(cred.key)]
    try:
        wrong.start()
        for path, body in (("/sites", {"id": "site-1", "name": "Site 1"}),
                           ("/patients", {"id": "p-1", "site": "site-1"}),
                           ("/gateways", {"id": "gw-a", "site": "site-1"}),
                           ("/devices", {"id": "dev-1", "site": "site-1", "gateway": "gw-a",
                                         "patient": "p-1"})):
            resp = wrong.api.post(path, json=body)
            assert resp.status_code == 201, resp.text
        wait_for(lambda: "broker refused the device list of gw-a" in wrong.log(), 20,
                 "the refusal logged")
        versions = _list_versions(wrong.db_url, "gw-a")
        assert versions is not None and versions[0] > 0 and versions[1] == 0, versions
    finally:
        wrong.stop()
        wrong.close()
    assert gw_a.messages == []
    right = Cloud(secure, tmp_path).start()  # the service's certificate, the same database
    try:
        wait_for(lambda: gw_a.messages, 20, "the list delivered to gw-a")
        version = versions[0]
        wait_for(lambda: _list_versions(right.db_url, "gw-a") == (version, version), 10,
                 "the list marked published once acknowledged")
    finally:
        right.stop()
        right.close()
    (topic, payload), = gw_a.messages
    assert topic == "vigie/v1/gateways/gw-a/config/devices"
    assert decode_gateway_devices(payload, "gw-a").devices[0].patient_id == "p-1"
    assert gw_b.messages == []
