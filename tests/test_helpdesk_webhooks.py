"""Helpdesk providers: Gorgias, Zendesk and the generic Standard Webhooks
format, through HTTP -> inbox -> worker -> tickets, from fixtures written
from their documented formats."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.models import InboxMessage, Order, Ticket, TicketMessage, TicketStatusChange
from app.providers import connect
from integrations import standard_webhooks, zendesk
from support import load_fixture

ZENDESK_SECRET = "dGhpcyBpcyBhIHplbmRlc2sgc2VjcmV0"  # what Admin Center shows, any string
STANDARD_SECRET = "whsec_Y2FyZWxvb3AtaGVscGRlc2stdGVzdC1rZXk="


@pytest.fixture
def connect_helpdesk(rt, shop):
    """Connect a helpdesk; returns (webhook path, secret header or None)."""

    def make(provider: str, secret: str | None = None, shop_id: int | None = None):
        with Session(rt.engine) as session:
            issued = connect(
                session, rt.secrets, shop_id or shop.id, provider, secret, rt.clock.now()
            )
            session.commit()
        return f"/webhooks/helpdesk/{provider}?key={issued.url_key}", issued.secret_header

    return make


@pytest.fixture
def customer_and_order(deliver, work):
    assert deliver("customers/create", "customers_create").status_code == 200
    assert deliver("orders/create", "orders_create").status_code == 200
    work()


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def post_gorgias(client, url, header, body):
    name, _, value = header.partition(": ")
    return client.post(url, data=compact(body), headers={"Content-Type": "application/json",
                                                          name: value})  # fmt: skip


def post_zendesk(client, url, body, *, secret=ZENDESK_SECRET, at=None):
    raw = compact(body)
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "Content-Type": "application/json",
        zendesk.TIMESTAMP: stamp,
        zendesk.SIGNATURE: zendesk.sign(secret, stamp, raw),
    }
    return client.post(url, data=raw, headers=headers)


def post_standard(client, url, payload, *, secret=STANDARD_SECRET):
    raw = compact(payload)
    headers = standard_webhooks.sign(secret, f"msg_{uuid.uuid4().hex}", datetime.now(UTC), raw)
    return client.post(url, data=raw, headers={"Content-Type": "application/json", **headers})


def tickets(db) -> list[Ticket]:
    with Session(db) as session:
        return list(session.exec(select(Ticket).order_by(Ticket.id)).all())


def messages(db) -> list[TicketMessage]:
    with Session(db) as session:
        return list(session.exec(select(TicketMessage).order_by(TicketMessage.sent_at)).all())


def statuses(db) -> list[tuple]:
    with Session(db) as session:
        rows = session.exec(select(TicketStatusChange).order_by(TicketStatusChange.at)).all()
        return [(r.previous, r.status) for r in rows]


# --- Gorgias -----------------------------------------------------------------


def test_gorgias_ticket_life_is_kept_with_customer_order_type_and_first_response(
    client, db, work, connect_helpdesk, customer_and_order
):
    url, header = connect_helpdesk("gorgias")
    assert header.startswith("X-CareLoop-Secret: ")
    for name in ("ticket_created", "message_created", "ticket_closed"):
        response = post_gorgias(client, url, header, load_fixture("gorgias", name))
        assert response.status_code == 200, response.json
    work()

    [ticket] = tickets(db)
    with Session(db) as session:
        order = session.exec(select(Order).where(Order.name == "#1001")).one()
    assert (ticket.source, ticket.external_id, ticket.channel) == ("gorgias", "42001", "email")
    assert (ticket.status, ticket.type, ticket.assignee) == (
        "closed", "where_is_my_order", "sam@northwind.example"
    )  # fmt: skip
    assert ticket.customer_id is not None and ticket.order_id == order.id
    assert ticket.requester_email == "ana@example.com"
    assert ticket.opened_at == datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert ticket.first_response_at == datetime(2026, 11, 22, 9, 40, tzinfo=UTC)
    assert ticket.closed_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert [(m.author_kind, m.public) for m in messages(db)] == [
        ("customer", True), ("agent", True)
    ]  # fmt: skip
    assert statuses(db) == [(None, "open"), ("open", "closed")]


def test_gorgias_refuses_a_wrong_or_missing_secret_and_stores_nothing(client, db, connect_helpdesk):
    url, header = connect_helpdesk("gorgias")
    body = load_fixture("gorgias", "ticket_created")
    wrong = header[:-4] + "AAAA"
    assert post_gorgias(client, url, wrong, body).status_code == 401
    assert client.post(url, json=body).status_code == 401
    assert post_gorgias(client, url.replace("key=", "key=x"), header, body).status_code == 401
    assert inbox_rows(db) == []


def test_gorgias_retry_of_the_same_delivery_is_stored_once(client, db, work, connect_helpdesk):
    url, header = connect_helpdesk("gorgias")
    body = load_fixture("gorgias", "ticket_created")
    assert post_gorgias(client, url, header, body).json == {"status": "stored"}
    assert post_gorgias(client, url, header, body).json == {"status": "duplicate"}
    work()
    assert len(tickets(db)) == 1 and len(messages(db)) == 1


def test_a_late_created_after_closed_does_not_reopen_the_ticket(client, db, work, connect_helpdesk):
    url, header = connect_helpdesk("gorgias")
    post_gorgias(client, url, header, load_fixture("gorgias", "ticket_closed"))
    work()
    post_gorgias(client, url, header, load_fixture("gorgias", "ticket_created"))
    work()
    [ticket] = tickets(db)
    assert ticket.status == "closed"
    # What only grows is still taken from the older delivery.
    assert ticket.opened_at == datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert len(messages(db)) == 1


def test_gorgias_body_that_is_not_a_ticket_is_refused_at_the_door(client, db, connect_helpdesk):
    url, header = connect_helpdesk("gorgias")
    no_time = load_fixture("gorgias", "ticket_created")
    del no_time["ticket"]["updated_datetime"]
    bad_status = load_fixture("gorgias", "ticket_created")
    bad_status["ticket"]["status"] = "exploded"
    for body in ({"hello": "world"}, no_time, bad_status):
        response = post_gorgias(client, url, header, body)
        assert response.status_code == 400, body
    assert inbox_rows(db) == []


# --- Zendesk -----------------------------------------------------------------


def test_zendesk_events_make_a_solved_ticket_with_its_public_agent_reply(
    client, db, work, connect_helpdesk, customer_and_order
):
    url, _ = connect_helpdesk("zendesk", ZENDESK_SECRET)
    for name in ("ticket_created", "comment_added", "status_changed_solved", "requester"):
        response = post_zendesk(client, url, load_fixture("zendesk", name))
        assert response.status_code == 200, response.json
    work()

    [ticket] = tickets(db)
    assert (ticket.source, ticket.external_id, ticket.status) == ("zendesk", "35436", "solved")
    assert (ticket.type, ticket.tier, ticket.assignee) == ("damage", "high", "zendesk:366000001")
    assert ticket.first_response_at == datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    assert ticket.closed_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    # The events carry only requester_id: the trigger's mapping names the customer.
    assert ticket.requester_email == "ana@example.com" and ticket.customer_id is not None
    assert ticket.order_id is not None
    assert statuses(db) == [(None, "open"), ("open", "solved")]


def test_zendesk_signature_must_match_the_body_and_be_recent(client, db, connect_helpdesk):
    url, _ = connect_helpdesk("zendesk", ZENDESK_SECRET)
    body = load_fixture("zendesk", "ticket_created")
    assert post_zendesk(client, url, body, secret="another-secret-altogether").status_code == 401
    stale = datetime.now(UTC) - timedelta(hours=1)
    assert post_zendesk(client, url, body, at=stale).status_code == 401
    raw = compact(body)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = zendesk.sign(ZENDESK_SECRET, stamp, raw)
    tampered = {zendesk.TIMESTAMP: stamp, zendesk.SIGNATURE: signature}
    assert client.post(url, data=raw + b" ", headers=tampered).status_code == 401
    assert client.post(url, data=raw).status_code == 401
    assert inbox_rows(db) == []


def test_zendesk_event_we_do_not_handle_is_422(client, db, connect_helpdesk):
    url, _ = connect_helpdesk("zendesk", ZENDESK_SECRET)
    body = load_fixture("zendesk", "ticket_created") | {"type": "zen:event-type:user.created"}
    assert post_zendesk(client, url, body).status_code == 422
    assert inbox_rows(db) == []


def test_zendesk_reply_before_its_ticket_is_kept_and_the_ticket_status_is_not_moved_back(
    client, db, work, connect_helpdesk
):
    url, _ = connect_helpdesk("zendesk", ZENDESK_SECRET)
    for name in ("status_changed_solved", "comment_added", "ticket_created"):
        post_zendesk(client, url, load_fixture("zendesk", name))
        work()
    [ticket] = tickets(db)
    assert ticket.status == "solved"
    assert ticket.first_response_at == datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    assert ticket.opened_at == datetime(2026, 11, 22, 9, tzinfo=UTC)


# --- the generic format ------------------------------------------------------


def standard_ticket(status: str, at: str, **data) -> dict:
    return {
        "type": "ticket.updated",
        "timestamp": at,
        "data": {"ticket_id": "T-9", "status": status, "channel": "sms",
                 "requester": {"phone": "+34612345678"}, **data},
    }  # fmt: skip


def test_standard_helpdesk_format_is_signed_and_strict(
    client, db, work, connect_helpdesk, customer_and_order
):
    url, _ = connect_helpdesk("standard-helpdesk", STANDARD_SECRET)
    message = {"id": "M-1", "author": "customer", "public": True,
               "sent_at": "2026-11-22T08:00:00Z", "body": "Is order 1001 coming?"}  # fmt: skip
    good = standard_ticket("open", "2026-11-22T08:00:00Z", messages=[message], tags=["Return"])
    assert post_standard(client, url, good).status_code == 200
    assert post_standard(client, url, good, secret="whsec_" + "QUFB" * 8).status_code == 401
    bad = standard_ticket("exploded", "2026-11-22T08:00:00Z")
    assert post_standard(client, url, bad).status_code == 400
    work()
    [ticket] = tickets(db)
    assert (ticket.source, ticket.channel, ticket.type) == ("standard", "sms", "return")
    assert ticket.customer_id is not None and ticket.order_id is not None


def inbox_rows(db) -> list[InboxMessage]:
    with Session(db) as session:
        return list(session.exec(select(InboxMessage)).all())


def test_zendesk_requester_mapping_sent_now_does_not_hide_the_events_still_to_come(
    client, db, work, connect_helpdesk
):
    url, _ = connect_helpdesk("zendesk", ZENDESK_SECRET)
    for name in ("ticket_created", "requester", "status_changed_solved"):
        post_zendesk(client, url, load_fixture("zendesk", name))
        work()
    [ticket] = tickets(db)
    assert (ticket.status, ticket.requester_email) == ("solved", "ana@example.com")
