"""The notifications log, through the API and the page: every row, however
old, is reachable a page at a time; filters by kind, status and channel
hold across pages; one shop never sees another's."""

from __future__ import annotations

import itertools

import pytest
from sqlmodel import Session, select

from app.models import Notification
from support import sign_in

KINDS = ("shipping", "delay", "birthday")
STATUSES = ("sent", "dead", "suppressed", "queued")
CHANNELS = ("email", "sms")


def fill(db, shop_id: int, count: int, now) -> list[int]:
    """`count` messages of mixed kinds, statuses and channels; their ids."""
    combos = itertools.cycle(itertools.product(KINDS, STATUSES, CHANNELS))
    with Session(db) as session:
        rows = []
        for number, (kind, status, channel) in zip(range(count), combos, strict=False):
            rows.append(Notification(
                shop_id=shop_id, key=f"log:{shop_id}:{number}", kind=kind,
                category="transactional", channel=channel, recipient=f"c{number}@example.com",
                locale="en", context="{}", status=status, next_attempt_at=now, created_at=now,
                updated_at=now,
            ))  # fmt: skip
        session.add_all(rows)
        session.commit()
        return [n.id for n in rows]


def every_page(client, shop, **filters) -> list[dict]:
    seen, cursor = [], None
    for _ in range(20):  # more would be a cursor that never moves on
        params = filters | {"limit": 100} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/notifications", headers=shop.auth, query_string=params)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += body["notifications"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


def test_the_api_pages_through_every_message_newest_first(client, shop, other_shop, db, clock):
    ids = fill(db, shop.id, 230, clock.now())
    fill(db, other_shop.id, 20, clock.now())
    listed = [n["id"] for n in every_page(client, shop)]
    assert listed == sorted(ids, reverse=True)


def test_the_api_filters_by_kind_status_and_channel_on_every_page(client, shop, db, clock):
    fill(db, shop.id, 480, clock.now())
    with Session(db) as session:
        expected = session.exec(
            select(Notification.id).where(
                Notification.kind == "delay", Notification.status == "dead",
                Notification.channel == "sms",
            )
        ).all()  # fmt: skip
    found = every_page(client, shop, kind="delay", status="dead", channel="sms")
    assert sorted(n["id"] for n in found) == sorted(expected) and len(expected) == 20
    assert {(n["kind"], n["status"], n["channel"]) for n in found} == {("delay", "dead", "sms")}


def test_an_exact_last_page_says_there_is_no_next(client, shop, db, clock):
    fill(db, shop.id, 100, clock.now())
    body = client.get("/api/v1/notifications?limit=100", headers=shop.auth).get_json()
    assert (len(body["notifications"]), body["next_cursor"]) == (100, None)


@pytest.mark.parametrize(("param", "value"), [
    ("status", "lost"), ("kind", "postcard"), ("channel", "fax"), ("cursor", "0"),
    ("cursor", "-3"), ("cursor", "abc"),
])  # fmt: skip
def test_a_bad_filter_or_cursor_is_a_bad_request(client, shop, param, value):
    response = client.get(f"/api/v1/notifications?{param}={value}", headers=shop.auth)
    assert response.status_code == 400
    assert param in response.get_json()["error"]["message"]


def test_the_log_page_reaches_the_oldest_dead_letter_and_keeps_its_filter(
    client, shop, other_shop, db, clock
):
    ids = fill(db, shop.id, 1000, clock.now())
    theirs = fill(db, other_shop.id, 10, clock.now())
    oldest = ids[2]  # the first dead letter: shipping, dead, email
    sign_in(client, shop.token)
    url, pages, found = "/app/notifications?status=dead", 0, False
    while url and not found and pages < 20:
        page = client.get(url).get_data(as_text=True)
        pages += 1
        found = f'id="notification-{oldest}"' in page
        assert not any(f'id="notification-{n}"' in page for n in theirs)
        assert "<strong>sent</strong>" not in page  # the filter held
        next_link = page.split('id="next-page" href="')[1].split('"')[0] if "next-page" in page \
            else None  # fmt: skip
        url = next_link.replace("&amp;", "&") if next_link else None
    assert found and pages == 3  # 250 dead letters, 100 a page

    assert client.get("/app/notifications?cursor=x").status_code == 400
