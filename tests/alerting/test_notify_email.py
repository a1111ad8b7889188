"""E-mail channel against a real SMTP server (aiosmtpd on a free loopback port)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.alerting.notify_kit import Clock, Cloud, dispatcher, routing
from vigie.services import free_port

pytestmark = pytest.mark.timeout(30)


class Inbox:
    """aiosmtpd handler: keeps what it accepted; answers ``refuse`` to DATA while set."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


class Smtp:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    yield server
    server.stop()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    c = Cloud(tmp_path, Clock())
    c.patient("p-1", "ehpad-1")
    yield c
    c.close()


def _config(tmp_path: Path, smtp: Smtp) -> Any:
    return routing(tmp_path, [{"site": "ehpad-1", "channel": "email",
                               "to": ["ide@ehpad-1.test", "cadre@ehpad-1.test"],
                               "severities": ["urgent"]}],
                   smtp={"host": "127.0.0.1", "port": smtp.port, "sender": "vigie@cloud.test"})


def test_grouped_alerts_arrive_as_one_mail(cloud: Cloud, smtp: Smtp, tmp_path: Path) -> None:
    smtp.start()
    d = dispatcher(cloud, _config(tmp_path, smtp))
    cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.clock.advance(10)
    cloud.raise_("p-1", "hf.heart_rate")
    cloud.clock.advance(20)
    assert d.step() == 1
    [(rcpts, mail)] = smtp.inbox.mails
    assert rcpts == ["ide@ehpad-1.test", "cadre@ehpad-1.test"]
    assert mail["From"] == "vigie@cloud.test"
    assert mail["Subject"] == "[Vigie] URGENT: patient p-1, 2 alerts"
    text = mail.get_content()
    assert "dm.hypoglycaemia opened" in text and "hf.heart_rate opened" in text
    assert mail["Message-ID"] == f"<{mail['X-Vigie-Delivery']}@vigie.invalid>"
    assert cloud.depth() == (0, 0)
    d.close()


def test_smtp_down_then_up_loses_nothing(cloud: Cloud, smtp: Smtp, tmp_path: Path) -> None:
    d = dispatcher(cloud, _config(tmp_path, smtp))
    cloud.raise_("p-1", "dm.hypoglycaemia")
    cloud.clock.advance(30)
    for _ in range(3):  # nothing listens
        assert d.step() == 0
        cloud.clock.advance(60)
    smtp.start()
    smtp.inbox.refuse = "451 Requested action aborted: local error"
    assert d.step() == 0, "a 4xx to DATA is not a 250: kept"
    cloud.clock.advance(60)
    smtp.inbox.refuse = None
    assert d.step() == 1
    assert len(smtp.inbox.mails) == 1
    assert cloud.depth() == (0, 0)
    d.close()
