"""One message that cannot be made or sent fails alone, with its reason on
its row, and the rest of its batch goes out: through the worker's outbox step
and the database, with the development transport (files)."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app import worker
from app.models import Notification
from notifications import outbox, rendering
from notifications.folder import FolderEmailProvider, FolderSmsProvider
from notifications.transports import Transports


@pytest.fixture
def folder(tmp_path) -> Transports:
    return Transports(
        FolderEmailProvider(tmp_path / "email"), FolderSmsProvider(tmp_path / "sms.log")
    )


def queue(db, shop_id: int, now, key: str, **changes) -> None:
    values = {
        "kind": "shipping", "category": "transactional", "channel": "email",
        "recipient": "ana@example.com", "locale": "en", "context": {"order_name": "#1001"},
    } | changes  # fmt: skip
    with Session(db) as session:
        assert outbox.enqueue(session, shop_id=shop_id, key=key, now=now, **values)
        session.commit()


def outcomes(db) -> dict[str, tuple[str, str | None]]:
    with Session(db) as session:
        rows = session.exec(select(Notification).order_by(Notification.id)).all()
        return {n.key: (n.status, n.status_detail) for n in rows}


def test_one_unbuildable_message_fails_alone_and_the_batch_goes_out(
    shop, other_shop, db, rt, clock, folder, tmp_path, monkeypatch
):
    # A kind whose templates are not on disk yet (as when a kind is added
    # before its words): rendering it raises LookupError.
    monkeypatch.setitem(rendering.KINDS, "anniversary", frozenset({"shop_name"}))
    now = clock.now()
    queue(db, other_shop.id, now, "good:1")
    queue(db, shop.id, now, "crlf", recipient="ana@example.com\r\nBcc: all@example.com")
    queue(db, shop.id, now, "no-template", kind="anniversary", context={})
    queue(db, shop.id, now, "bad-total", context={"order_name": "#1001", "total": "lots"})
    queue(db, shop.id, now, "sms-crlf", channel="sms", recipient="+34612345678\n")
    queue(db, other_shop.id, now, "good:2", channel="sms", recipient="+34612345678")

    assert worker.send_due(rt, folder) == 6

    result = outcomes(db)
    assert result["good:1"] == ("sent", None) and result["good:2"] == ("sent", None)
    assert result["crlf"] == (
        "failed", "cannot prepare: ValueError: the recipient address contains a control character"
    )  # fmt: skip
    assert result["sms-crlf"] == result["crlf"]
    assert result["no-template"][0] == "failed"
    assert result["no-template"][1].startswith("cannot prepare: LookupError: no email template")
    assert result["bad-total"][0] == "failed"
    assert result["bad-total"][1].startswith("cannot prepare: InvalidOperation")
    assert len(list((tmp_path / "email").iterdir())) == 1
    assert len((tmp_path / "sms.log").read_text().splitlines()) == 1


class BrokenForOneAddress(FolderEmailProvider):
    """A provider with a bug that one message triggers: it raises for the
    whole batch, which its contract says it does only for a bug."""

    def send_batch(self, messages):
        if any(m.to == "trigger@example.com" for m in messages):
            raise RuntimeError("provider bug")
        return super().send_batch(messages)


def test_a_provider_failing_on_one_message_fails_that_message_only(shop, db, rt, clock, tmp_path):
    transports = Transports(
        BrokenForOneAddress(tmp_path / "email"), FolderSmsProvider(tmp_path / "sms.log")
    )
    now = clock.now()
    queue(db, shop.id, now, "good")
    queue(db, shop.id, now, "trigger", recipient="trigger@example.com")
    queue(db, shop.id, now, "malformed", recipient="ana@@example.com")

    worker.send_due(rt, transports)

    result = outcomes(db)
    assert result["good"] == ("sent", None)
    assert result["trigger"] == ("queued", "RuntimeError: provider bug")  # tried again later
    assert result["malformed"][0] == "failed"
    assert len(list((tmp_path / "email").iterdir())) == 1
