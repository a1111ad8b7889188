"""Grouping per patient, routing per site/severity/escalation level, durability of the
outbox across a restart, and the routing file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from alerting.notify import Message, Route, RoutingError, load_routing
from alerting.notify.dispatch import Dispatcher
from alerting.seam import Severity
from cloud_api import alerts
from cloud_api.notifications import SqlNotifyOutbox
from tests.alerting.notify_kit import SECRET, Clock, Cloud, Receiver, dispatcher, routing, serve
from vigie.services import free_port

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """A channel that records (a seam test: the real channels have their own tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []

    def send(self, route: Route, message: Message) -> None:
        self.sent.append((route.name, message))

    def close(self) -> None:
        pass

    def summary(self) -> list[tuple[str, str, list[str]]]:
        return [(name, m.patient_id, [f"{a.rule}:{a.change}" for a in m.alerts])
                for name, m in self.sent]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    c = Cloud(tmp_path, Clock())
    c.patient("p-1", "ehpad-1")
    c.patient("p-2", "ehpad-1")
    c.patient("p-3", "home-3")
    yield c
    c.close()


def _recording(cloud: Cloud, tmp_path: Path, routes: list[dict[str, object]]
               ) -> tuple[Dispatcher, Recorder]:
    rec = Recorder()
    config = routing(tmp_path, routes)
    return Dispatcher(SqlNotifyOutbox(cloud.sessions), config, {"webhook": rec},
                      clock=cloud.clock), rec


def _hook(name: str, site: str = "*", **extra: object) -> dict[str, object]:
    return {"name": name, "site": site, "channel": "webhook", "url": "http://127.0.0.1:9/x",
            "secret": SECRET, **extra}


def test_a_round_brings_one_message_per_patient(cloud: Cloud, tmp_path: Path) -> None:
    for receiver in serve(Receiver(free_port())):
        d = dispatcher(cloud, routing(tmp_path, [
            {"site": "ehpad-1", "channel": "webhook", "url": receiver.url, "secret": SECRET}]))
        for rule in ("dm.hypoglycaemia", "hf.heart_rate", "hf.bp_systolic"):
            cloud.raise_("p-1", rule)
            cloud.clock.advance(5)
        cloud.raise_("p-2", "dm.hypoglycaemia")
        assert d.step() == 0
        cloud.clock.advance(15)  # 30 s after p-1's first change, 15 s after p-2's
        assert d.step() == 1
        [hit] = receiver.delivered()
        assert hit.json["patient"] == "p-1"
        assert [a["rule"] for a in hit.json["alerts"]] == [
            "dm.hypoglycaemia", "hf.heart_rate", "hf.bp_systolic"]
        cloud.clock.advance(15)
        assert d.step() == 1
        assert [h.json["patient"] for h in receiver.delivered()] == ["p-1", "p-2"]
        d.close()


def test_changes_after_a_group_left_start_a_new_group(cloud: Cloud, tmp_path: Path) -> None:
    d, rec = _recording(cloud, tmp_path, [_hook("all")])
    cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.clock.advance(30)
    d.step()
    cloud.raise_("p-1", "hf.heart_rate")
    cloud.clock.advance(29)
    d.step()
    cloud.clock.advance(1)
    d.step()
    assert rec.summary() == [("all", "p-1", ["dm.hypoglycaemia:opened"]),
                             ("all", "p-1", ["hf.heart_rate:opened"])]


def test_routes_by_site_severity_and_escalation_level(cloud: Cloud, tmp_path: Path) -> None:
    d, rec = _recording(cloud, tmp_path, [
        _hook("ehpad-urgent", "ehpad-1", severities=["urgent"]),
        _hook("ehpad-all", "ehpad-1"),
        _hook("second-person", "ehpad-1", min_level=1),
        _hook("home", "home-3")])
    cloud.raise_("p-1", "dm.hypoglycaemia", Severity.URGENT)
    cloud.raise_("p-2", "hf.bp_diastolic", Severity.WARNING)
    cloud.raise_("p-3", "hf.spo2", Severity.WARNING)
    cloud.clock.advance(30)
    d.step()
    assert sorted(rec.summary()) == [
        ("ehpad-all", "p-1", ["dm.hypoglycaemia:opened"]),
        ("ehpad-all", "p-2", ["hf.bp_diastolic:opened"]),
        ("ehpad-urgent", "p-1", ["dm.hypoglycaemia:opened"]),
        ("home", "p-3", ["hf.spo2:opened"])]
    rec.sent.clear()
    cloud.clock.advance(15 * 60 - 30)
    cloud.tick()  # p-1's urgent alert was not acknowledged in 15 minutes
    cloud.clock.advance(30)
    d.step()
    assert sorted(rec.summary()) == [
        ("ehpad-all", "p-1", ["dm.hypoglycaemia:escalated"]),
        ("ehpad-urgent", "p-1", ["dm.hypoglycaemia:escalated"]),
        ("second-person", "p-1", ["dm.hypoglycaemia:escalated"])]
    assert rec.sent[0][1].alerts[0].level == 1


def test_acknowledged_within_the_window_is_not_paged(cloud: Cloud, tmp_path: Path) -> None:
    d, rec = _recording(cloud, tmp_path, [_hook("all")])
    aid = cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.raise_("p-1", "hf.heart_rate")
    alerts.acknowledge(cloud.sessions, aid, "nurse-1", "at the bedside")
    cloud.clock.advance(30)
    d.step()
    assert rec.summary() == [("all", "p-1", ["hf.heart_rate:opened"])]
    assert cloud.depth() == (0, 0)


def test_undelivered_messages_survive_a_restart(cloud: Cloud, tmp_path: Path) -> None:
    receiver = Receiver(free_port())
    config = routing(tmp_path, [_hook("r", url=receiver.url)])
    first = dispatcher(cloud, config)
    cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.clock.advance(30)
    assert first.step() == 0  # receiver down: planned, kept
    first.close()
    del first  # the process dies
    assert cloud.depth() == (0, 1)
    for _ in serve(receiver):
        second = dispatcher(cloud, config)
        cloud.clock.advance(120)
        assert second.step() == 1
        second.close()
    assert len(receiver.delivered()) == 1 and cloud.depth() == (0, 0)


def test_two_dispatchers_never_send_the_same_message_twice(cloud: Cloud,
                                                           tmp_path: Path) -> None:
    d1, rec1 = _recording(cloud, tmp_path, [_hook("all")])
    d2, rec2 = _recording(cloud, tmp_path, [_hook("all")])
    cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.clock.advance(30)
    events = d2.outbox.pending()
    d1.step()
    assert not d2.outbox.plan(events, []), "already planned by the other one"
    cloud.raise_("p-2", "dm.hypoglycaemia")
    cloud.clock.advance(30)
    d1._plan_due(cloud.clock.now)
    [due] = d2.outbox.due(cloud.clock.now, 10)
    lease = cloud.clock.now + timedelta(seconds=60)
    assert d1.outbox.claim(due, lease)
    assert not d2.outbox.claim(due, lease), "claimed: the lease is taken"
    assert d2.step() == 0
    assert [p for _, p, _ in rec1.summary()] == ["p-1"] and rec2.sent == []


def test_routing_file(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("from-a-file\n")
    path = tmp_path / "notify.toml"
    path.write_text("""
[grouping]
window_s = 10
[escalation]
urgent = 5
warning = 0
[smtp]
host = "127.0.0.1"
port = 2525
[[routes]]
site = "ehpad-1"
channel = "webhook"
url = "https://example.org/hook"
secret_file = "hook.secret"
severities = ["urgent"]
[[routes]]
channel = "email"
to = ["a@example.org"]
language = "fr"
""")
    config = load_routing(path)
    assert config.grouping.window_s == 10
    assert [r.name for r in config.routes] == ["0:webhook:ehpad-1", "1:email:*"]
    assert config.routes[0].secret == "from-a-file"
    assert "from-a-file" not in repr(config.routes[0])
    assert [r.language for r in config.routes] == ["en", "fr"], "English unless told"
    after = config.escalation.after()
    assert after["urgent"] is not None and after["urgent"].total_seconds() == 300
    assert after["warning"] is None


@pytest.mark.parametrize("route, error", [
    ({"channel": "webhook", "url": "https://x"}, "secret"),
    ({"channel": "webhook", "url": "ftp://x", "secret": "s"}, "http"),
    ({"channel": "email", "to": ["nobody"]}, "to"),
    ({"channel": "nurse_console"}, r"\[mqtt\]"),
    ({"channel": "pager"}, "channel"),
    ({"channel": "webhook", "url": "https://x", "secret": "s", "severities": ["bad"]},
     "severities"),
    ({"channel": "email", "to": ["a@example.org"], "language": "de"},
     r"routes\.0\.language: .*unknown language 'de' \(known: en, fr\)"),
    ({"channel": "email", "to": ["a@example.org"], "language": "French"}, "unknown language"),
    ({"channel": "email", "to": ["a@example.org"], "zone": "Europe/Pari"},
     r"routes\.0\.zone: .*unknown time zone 'Europe/Pari'"),
    ({"channel": "email", "to": ["a@example.org"], "zone": "../../etc/passwd"},
     "unknown time zone"),
])
def test_bad_routes_are_refused(tmp_path: Path, route: dict[str, object], error: str) -> None:
    with pytest.raises(RoutingError, match=error):
        routing(tmp_path, [route], smtp={"host": "127.0.0.1"})
