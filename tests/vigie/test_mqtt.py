"""The MQTT client layer (``vigie.mqtt``) against a real Mosquitto: one waiter per message
id, resolved by the PUBACK, failed by a lost connection, refused by the broker's ACL,
never leaked; subscriptions dispatched by filter and restored after a broker restart."""

from __future__ import annotations

import queue
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import wait_for
from vigie.contract import observations_topic
from vigie.mqtt import (
    Delivery,
    Message,
    MqttClient,
    MqttError,
    NotConnected,
    Options,
    PublishFailed,
    PublishRefused,
    PublishTimeout,
    Tls,
)
from vigie.pki import issue_gateway
from vigie.services import Mosquitto, Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOT_AUTHORIZED = 0x87


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "run")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def client(broker: Mosquitto, client_id: str = "", **kw: object) -> MqttClient:
    options = Options(port=broker.port, client_id=client_id, reconnect_delay=(1, 1), **kw)  # type: ignore[arg-type]
    c = MqttClient(options)
    c.start()
    assert c.wait_connected(10), "connected"
    return c


def test_a_waiter_is_resolved_by_the_puback(broker: Mosquitto) -> None:
    c = client(broker)
    try:
        deliveries = [c.publish("t/a", str(i).encode()) for i in range(200)]
        for d in deliveries:
            d.wait(10)
            assert d.ok is True and d.error is None
        assert c.pending() == 0
        done: list[Delivery] = []
        late = c.publish("t/a", b"x")
        late.wait(10)
        late.add_done_callback(done.append)  # already resolved: called at once
        assert done == [late]
    finally:
        c.stop()


def test_waiters_fail_when_the_broker_dies(broker: Mosquitto) -> None:
    c = client(broker)
    try:
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)  # takes the packets, answers nothing
        deliveries = [c.publish("t/a", b"x") for _ in range(10)]
        with pytest.raises(PublishTimeout):
            deliveries[0].wait(0.3)
        assert c.pending() == 9, "a waiter given up is removed at once"
        broker.stop(hard=True)  # SIGKILL: the connection is reset
        for d in deliveries[1:]:
            with pytest.raises(NotConnected):
                d.wait(10)
        assert c.pending() == 0 and not c.connected
        with pytest.raises(NotConnected):
            c.publish("t/a", b"x")
        assert c.pending() == 0
    finally:
        c.stop()


def test_stop_fails_pending_waiters(broker: Mosquitto) -> None:
    c = client(broker)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)
    d = c.publish("t/a", b"x")
    c.stop()
    broker.proc.send_signal(signal.SIGCONT)
    with pytest.raises(NotConnected):
        d.wait(1)
    assert d.ok is False and c.pending() == 0


def test_a_publish_the_acl_denies_is_refused(tmp_path: Path) -> None:
    svc = Services(tmp_path / "run", secure=True)
    assert svc.pki is not None
    issue_gateway(svc.pki, "gw-a")
    svc.mosquitto.start()
    try:
        cred = svc.pki.gateway("gw-a")
        c = MqttClient(Options(port=svc.mosquitto.port, client_id="gw-a",
                               tls=Tls(str(cred.ca), str(cred.cert), str(cred.key))))
        c.start()
        assert c.wait_connected(10)
        try:
            c.publish(observations_topic("gw-a"), b"{}").wait(10)  # its own topic
            refused = c.publish(observations_topic("gw-b"), b"{}")
            with pytest.raises(PublishRefused) as caught:
                refused.wait(10)
            assert caught.value.reason.value == NOT_AUTHORIZED
            assert refused.ok is False and c.pending() == 0
        finally:
            c.stop()
    finally:
        svc.mosquitto.stop()


def _drop_connection(c: MqttClient) -> None:
    """Break the TCP connection under paho, as a network fault would."""
    sock = c.paho.socket()
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return  # already gone


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 60), st.booleans()), min_size=5, max_size=5))
def test_no_waiter_leaks_through_random_disconnects(broker: Mosquitto,
                                                    rounds: list[tuple[int, bool]]) -> None:
    """1,000 publishes (5 examples of 5 rounds of up to 60, plus fill-up), connections
    dropped at random moments: every delivery ends resolved, none stays registered."""
    c = client(broker)
    try:
        deliveries: list[Delivery] = []
        refused_offline = 0
        target = 200
        for i, (burst, drop) in enumerate(rounds):
            count = burst if i < len(rounds) - 1 else max(burst, target - len(deliveries))
            for n in range(count):
                if drop and n == count // 2:
                    _drop_connection(c)
                try:
                    deliveries.append(c.publish("t/leak", b"x"))
                except NotConnected:
                    refused_offline += 1
            c.wait_connected(10)
        for d in deliveries:
            try:
                d.wait(10)
            except NotConnected:
                assert d.ok is False
        assert all(d.done() for d in deliveries)
        assert c.pending() == 0
        assert len(deliveries) + refused_offline >= target
    finally:
        c.stop()


def test_dispatch_by_filter_and_subscriptions_restored_after_a_restart(
        broker: Mosquitto) -> None:
    got_a: queue.Queue[Message] = queue.Queue()
    got_b: queue.Queue[Message] = queue.Queue()
    # clean session: a restarted broker has no session to bring the subscriptions back
    sub = MqttClient(Options(port=broker.port, client_id="sub", clean_start=True,
                             reconnect_delay=(1, 1)))
    sub.subscribe("a/+/x", got_a.put)
    sub.subscribe("$share/grp/b/#", got_b.put)
    sub.start()
    pub = client(broker, "pub")
    try:
        wait_for(lambda: sub.subscribed, 10, "subscribed")
        pub.publish("a/1/x", b"1").wait(5)
        pub.publish("b/2/y", b"2").wait(5)
        assert got_a.get(timeout=5).payload == b"1"
        assert got_b.get(timeout=5).topic == "b/2/y"
        assert got_a.empty() and got_b.empty()

        broker.restart()
        wait_for(lambda: sub.subscribed and pub.connected, 15, "both back, subscribed")
        pub.publish("a/3/x", b"3").wait(5)
        assert got_a.get(timeout=5).payload == b"3"
    finally:
        pub.stop()
        sub.stop()


def test_a_handler_that_raises_does_not_stop_the_client(broker: Mosquitto) -> None:
    got: queue.Queue[bytes] = queue.Queue()

    def handler(msg: Message) -> None:
        if msg.payload == b"bad":
            raise ValueError("boom")
        got.put(bytes(msg.payload))

    sub = MqttClient(Options(port=broker.port, client_id="sub2"))
    sub.subscribe("h/#", handler)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed, 10, "subscribed")
        pub = client(broker, "pub2")
        try:
            pub.publish("h/1", b"bad").wait(5)
            pub.publish("h/1", b"good").wait(5)
            assert got.get(timeout=5) == b"good"
        finally:
            pub.stop()
    finally:
        sub.stop()


def test_a_message_paho_will_not_take_fails_at_once(broker: Mosquitto) -> None:
    c = client(broker)
    try:
        with pytest.raises(PublishFailed):
            c.publish("a/#", b"x")  # no wildcard in a topic name
        assert c.pending() == 0
        c.publish("a/b", b"x").wait(5)  # and the client goes on
    finally:
        c.stop()


def test_errors_share_one_root() -> None:
    for cls in (NotConnected, PublishFailed, PublishRefused, PublishTimeout):
        assert issubclass(cls, MqttError)
    d = Delivery(None, "t")
    with pytest.raises(PublishTimeout):
        d.wait(0.01)
    start = time.monotonic()
    assert d.ok is None and time.monotonic() - start < 1
