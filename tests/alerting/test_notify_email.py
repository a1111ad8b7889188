"""E-mail channel against a real SMTP server (aiosmtpd on a free loopback port)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.alerting.notify_kit import (
    HYPO2,
    HYPO2_EN,
    HYPO2_FR,
    Clock,
    Cloud,
    dispatcher,
    routing,
)
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
    assert mail["Subject"] == ("[Vigie] URGENT: patient p-1, 2 alerts - "
                               "dm.hypoglycaemia is urgent")
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


def subject(mail: email.message.EmailMessage) -> str:
    """The subject as a mail client shows it: a long one is folded onto the line after
    "Subject:", and the parser keeps the folding space."""
    return str(mail["Subject"]).strip()


def _bilingual(tmp_path: Path, smtp: Smtp) -> Any:
    """The same alerts to a French nurse and an English-speaking doctor (default language)."""
    return routing(tmp_path, [
        {"name": "ide", "site": "ehpad-1", "channel": "email", "to": ["ide@ehpad-1.test"],
         "language": "fr"},
        {"name": "doctor", "site": "ehpad-1", "channel": "email", "to": ["dr@ehpad-1.test"]},
        {"name": "reunion", "site": "ehpad-1", "channel": "email", "to": ["dr@chu.test"],
         "zone": "Indian/Reunion"}],
        smtp={"host": "127.0.0.1", "port": smtp.port, "sender": "vigie@cloud.test"})


def _mails(smtp: Smtp) -> dict[str, email.message.EmailMessage]:
    return {rcpts[0]: mail for rcpts, mail in smtp.inbox.mails}


def test_french_target_gets_french_mail_english_target_english(cloud: Cloud, smtp: Smtp,
                                                               tmp_path: Path) -> None:
    smtp.start()
    d = dispatcher(cloud, _bilingual(tmp_path, smtp))
    aid = cloud.raise_("p-1", "dm.hypoglycaemia", text=HYPO2)
    cloud.clock.advance(30)
    assert d.step() == 3
    mails = _mails(smtp)
    fr, en = mails["ide@ehpad-1.test"], mails["dr@ehpad-1.test"]
    assert "measured 2026-03-01 11:00 (Indian/Reunion)" in mails["dr@chu.test"].get_content()

    assert subject(fr) == f"[Vigie] URGENTE : patient p-1, 1 alerte - {HYPO2_FR}"
    assert fr["Content-Language"] == "fr"
    body = fr.get_content()
    assert "Hypoglycémie de niveau 2" in body
    assert body.splitlines() == [
        "Patient p-1 (site ehpad-1)", "",
        f"- [urgente] nouvelle alerte : {HYPO2_FR} (dm.hypoglycaemia)",
        f"  mesure du 01/03/2026 à 08:00 (Europe/Paris), alerte n° {aid}", "",
        f"Référence du message : {fr['X-Vigie-Delivery']}"]
    assert "hypoglycaemia 48" not in body

    assert subject(en) == f"[Vigie] URGENT: patient p-1, 1 alert - {HYPO2_EN}"
    assert en["Content-Language"] == "en"
    body = en.get_content()
    assert f"- [urgent] dm.hypoglycaemia opened: {HYPO2_EN}" in body
    assert f"measured 2026-03-01 08:00 (Europe/Paris), alert #{aid}" in body
    assert "Hypoglycémie" not in body and "Hypoglycémie" not in subject(en)
    assert cloud.depth() == (0, 0)
    d.close()


def test_alert_without_key_falls_back_to_its_english_message(cloud: Cloud, smtp: Smtp,
                                                              tmp_path: Path) -> None:
    """An alert stored before the catalogue (no key): French words around its English
    message."""
    smtp.start()
    d = dispatcher(cloud, _bilingual(tmp_path, smtp))
    cloud.raise_("p-1", "hf.heart_rate")
    cloud.raise_("p-1", "dm.hypoglycaemia", text=HYPO2)
    cloud.clock.advance(30)
    assert d.step() == 3
    fr = _mails(smtp)["ide@ehpad-1.test"]
    assert subject(fr) == ("[Vigie] URGENTE : patient p-1, 2 alertes - "
                             "hf.heart_rate is urgent")
    body = fr.get_content()
    assert "- [urgente] nouvelle alerte : hf.heart_rate is urgent (hf.heart_rate)" in body
    assert f"- [urgente] nouvelle alerte : {HYPO2_FR} (dm.hypoglycaemia)" in body
    d.close()


def test_escalated_mail_in_french(cloud: Cloud, smtp: Smtp, tmp_path: Path) -> None:
    smtp.start()
    d = dispatcher(cloud, _bilingual(tmp_path, smtp))
    cloud.raise_("p-1", "dm.hypoglycaemia", text=HYPO2)
    cloud.clock.advance(30)
    assert d.step() == 3
    smtp.inbox.mails.clear()
    cloud.clock.advance(15 * 60)
    cloud.tick()  # not acknowledged within 15 minutes
    cloud.clock.advance(30)
    assert d.step() == 3
    mails = _mails(smtp)
    fr, en = mails["ide@ehpad-1.test"], mails["dr@ehpad-1.test"]
    assert "measured 2026-03-01 11:00 (Indian/Reunion)" in mails["dr@chu.test"].get_content()
    assert subject(fr) == f"[Vigie] URGENTE (RELANCE) : patient p-1, 1 alerte - {HYPO2_FR}"
    assert ("- [urgente] non acquittée, relancée, niveau d'escalade 1 : "
            f"{HYPO2_FR} (dm.hypoglycaemia)") in fr.get_content()
    assert subject(en) == f"[Vigie] URGENT ESCALATED: patient p-1, 1 alert - {HYPO2_EN}"
    assert (f"- [urgent] dm.hypoglycaemia escalated, escalation level 1: {HYPO2_EN}"
            in en.get_content())
    d.close()
