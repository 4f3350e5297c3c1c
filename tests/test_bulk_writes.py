"""Many rows in one statement (`app.db.insert_rows`, `update_rows`): what
the outbox and the delay sweep write through. On PostgreSQL the rows travel
as one JSON document, so every value must come back exactly as it went in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from app.db import insert_rows, update_rows
from app.models import Notification, Order

AT = datetime(2026, 3, 29, 0, 30, 0, 123456, tzinfo=UTC)


def _message(shop_id: int, key: str, **values) -> dict:
    row = {
        "shop_id": shop_id, "key": key, "kind": "delay", "category": "transactional",
        "customer_id": None, "order_id": None, "channel": "email", "recipient": "a@example.com",
        "locale": "en", "context": "{}", "status": "queued", "status_detail": None,
        "attempts": 0, "next_attempt_at": AT, "created_at": AT, "updated_at": AT,
        "rule_id": None, "quiet_hours": True,
    }  # fmt: skip
    return {**row, **values}


def test_values_come_back_exactly_as_they_went_in(db, shop):
    awkward = 'quote " backslash \\ newline \n tab \t ünïcödé 🎉 \'single\' {"json": [1]}'
    rows = [
        _message(shop.id, "k1", context=awkward, status_detail=awkward, quiet_hours=False,
                 next_attempt_at=AT.astimezone(timezone(timedelta(hours=-5)))),
        _message(shop.id, "k2", recipient="+15555550123", attempts=7),
    ]  # fmt: skip
    with Session(db) as session:
        returned = insert_rows(session, Notification.__table__, rows, returning=("id", "key"))
        session.commit()
        stored = {n.key: n for n in session.exec(select(Notification)).all()}
    assert sorted(key for _id, key in returned) == ["k1", "k2"]
    assert {stored[key].id for _id, key in returned} == {
        notification_id for notification_id, _ in returned
    }
    first = stored["k1"]
    assert (first.context, first.status_detail, first.quiet_hours) == (awkward, awkward, False)
    assert first.next_attempt_at == AT  # the same instant, whatever offset it was given in
    assert (stored["k2"].recipient, stored["k2"].attempts) == ("+15555550123", 7)


def test_a_row_that_conflicts_is_skipped_and_not_returned(db, shop):
    with Session(db) as session:
        insert_rows(session, Notification.__table__, [_message(shop.id, "same", context="first")])
        returned = insert_rows(
            session, Notification.__table__,
            [_message(shop.id, "same", context="second"), _message(shop.id, "other")],
            returning=("key",),
        )  # fmt: skip
        session.commit()
        contexts = session.exec(select(Notification.key, Notification.context)).all()
    assert returned == [("other",)]
    assert sorted(contexts) == [("other", "{}"), ("same", "first")]


def test_a_time_without_a_zone_is_refused_and_nothing_is_written(db, shop):
    with Session(db) as session:
        naive = _message(shop.id, "naive", next_attempt_at=datetime(2026, 1, 1))
        with pytest.raises(Exception, match=r"time zone|timezone"):
            insert_rows(session, Notification.__table__, [naive])
        session.rollback()
        assert session.exec(select(Notification)).all() == []


def test_update_rows_gives_each_row_its_own_values(db, shop):
    with Session(db) as session:
        orders = [
            Order(shop_id=shop.id, shopify_id=n, name=f"#{n}", currency="USD", total_price=1,
                  state="paid", state_changed_at=AT, snapshot_updated_at=AT, created_at=AT)
            for n in (1, 2, 3)
        ]  # fmt: skip
        session.add_all(orders)
        session.commit()
        ids = [o.id for o in orders]
        update_rows(session, Order.__table__, [
            {"id": ids[0], "next_check_at": AT + timedelta(hours=1)},
            {"id": ids[1], "next_check_at": None},
        ])  # fmt: skip
        session.commit()
        stored = dict(session.exec(select(Order.id, Order.next_check_at)).all())
    assert stored == {ids[0]: AT + timedelta(hours=1), ids[1]: None, ids[2]: None}
