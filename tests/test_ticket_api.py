"""The first-party ticket API (shops without a helpdesk we speak) and the
support settings, through HTTP."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from app import jobs
from app.models import Notification, Survey, Ticket, TicketStatusChange
from notifications import rendering

T0 = "2026-11-22T09:00:00Z"


@pytest.fixture
def customer_and_order(deliver, work):
    deliver("customers/create", "customers_create")
    deliver("orders/create", "orders_create")
    work()


def open_ticket(client, shop, **fields):
    body = {
        "external_id": "T-1", "channel": "email", "subject": "Damaged mug",
        "opened_at": T0, "requester": {"email": "ana@example.com"}, "tags": ["damaged"],
        "messages": [{"id": "M-1", "author": "customer", "sent_at": T0,
                      "body": "It came broken (order #1001)"}],
    } | fields  # fmt: skip
    return client.post("/api/v1/tickets", json=body, headers=shop.auth)


def sweep(rt) -> None:
    jobs.enqueue_shop_jobs(rt)
    jobs.run_shop_jobs(rt)


def test_a_ticket_opened_answered_and_closed_through_the_api_gets_its_survey(
    client, shop, rt, db, customer_and_order
):
    created = open_ticket(client, shop)
    assert created.status_code == 201, created.json
    ticket = created.json
    assert (ticket["type"], ticket["status"], ticket["channel"]) == ("damage", "open", "email")
    assert ticket["customer_id"] is not None and ticket["order_id"] is not None
    path = f"/api/v1/tickets/{ticket['id']}"

    reply = {"author": "agent", "sent_at": "2026-11-22T09:20:00Z", "body": "Sorry!"}
    note = {"author": "agent", "public": False, "sent_at": "2026-11-22T09:10:00Z", "body": "hm"}
    assert client.post(f"{path}/messages", json=note, headers=shop.auth).status_code == 201
    assert client.post(f"{path}/messages", json=reply, headers=shop.auth).status_code == 201
    closed = client.post(f"{path}/close", json={"at": "2026-11-22T10:00:00Z"}, headers=shop.auth)
    assert closed.status_code == 200
    document = client.get(path, headers=shop.auth).json
    # The internal note is not the first response; the public reply is.
    assert document["first_response_at"] == "2026-11-22T09:20:00Z"
    assert document["closed_at"] == "2026-11-22T10:00:00Z"
    assert [m["author"] for m in document["messages"]] == ["customer", "agent", "agent"]

    sweep(rt)
    with Session(db) as session:
        assert session.exec(select(Notification.kind)).all() == ["survey"]
    listed = client.get("/api/v1/tickets?status=closed", headers=shop.auth).json
    assert [t["id"] for t in listed["tickets"]] == [ticket["id"]]


def test_reopen_puts_off_the_survey_and_records_each_status_change(client, shop, rt, db):
    ticket = open_ticket(client, shop).json
    path = f"/api/v1/tickets/{ticket['id']}"
    client.post(f"{path}/close", json={"at": "2026-11-22T10:00:00Z"}, headers=shop.auth)
    client.post(f"{path}/reopen", json={"at": "2026-11-22T10:01:00Z"}, headers=shop.auth)
    sweep(rt)
    with Session(db) as session:
        assert session.exec(select(Survey)).all() == []
        changes = session.exec(select(TicketStatusChange).order_by(TicketStatusChange.at)).all()
    assert [(c.previous, c.status) for c in changes] == [
        (None, "open"), ("open", "closed"), ("closed", "open")
    ]  # fmt: skip


def test_a_rating_collected_elsewhere_is_recorded_and_no_survey_is_sent(client, shop, rt, db):
    ticket = open_ticket(client, shop, assignee="sam").json
    path = f"/api/v1/tickets/{ticket['id']}"
    client.post(f"{path}/close", json={"at": "2026-11-22T10:00:00Z"}, headers=shop.auth)
    rated = client.post(f"{path}/rating", json={"rating": 5, "comment": "Great"},
                        headers=shop.auth)  # fmt: skip
    assert rated.status_code == 200
    survey = rated.json["survey"]
    assert (survey["source"], survey["rating"], survey["agent"]) == ("api", 5, "sam")
    sweep(rt)
    with Session(db) as session:
        assert session.exec(select(Notification)).all() == []


def test_bad_input_is_400_and_changes_nothing(client, shop, db):
    for body in (
        {"channel": "pigeon"},
        {"opened_at": "2026-11-22T09:00:00"},  # no offset
        {"messages": [{"author": "robot"}]},
        {"tags": "damaged"},
        {"surprise": 1},
        {"external_id": ""},
    ):
        response = client.post("/api/v1/tickets", json=body, headers=shop.auth)
        assert response.status_code == 400, body
    ticket = open_ticket(client, shop).json
    path = f"/api/v1/tickets/{ticket['id']}"
    assert client.post(f"{path}/rating", json={"rating": 6}, headers=shop.auth).status_code == 400
    assert (
        client.post(f"{path}/close", json={"at": "yesterday"}, headers=shop.auth).status_code == 400
    )
    with Session(db) as session:
        assert len(session.exec(select(Ticket)).all()) == 1
        assert session.exec(select(Ticket.status)).one() == "open"


def test_impossible_changes_are_409_and_another_shops_ticket_is_404(client, shop, other_shop):
    ticket = open_ticket(client, shop).json
    path = f"/api/v1/tickets/{ticket['id']}"
    assert open_ticket(client, shop).status_code == 409  # the same external id
    early = client.post(f"{path}/close", json={"at": "2026-11-22T08:00:00Z"}, headers=shop.auth)
    assert early.status_code == 409
    assert client.get(path, headers=other_shop.auth).status_code == 404
    assert client.post(f"{path}/close", json={}, headers=other_shop.auth).status_code == 404
    assert client.get("/api/v1/tickets", headers=other_shop.auth).json["tickets"] == []


def test_support_settings_change_only_what_is_given(client, shop):
    path = "/api/v1/settings/support"
    assert client.get(path, headers=shop.auth).json["survey_delay_minutes"] == 0
    changed = client.patch(path, json={"survey_delay_minutes": 30, "skip_tags": ["Wholesale"],
                                       "support_email": "Help@Shop.example"},
                           headers=shop.auth)  # fmt: skip
    assert changed.status_code == 200
    assert (changed.json["skip_tags"], changed.json["support_email"]) == (
        ["wholesale"], "help@shop.example"
    )  # fmt: skip
    again = client.patch(path, json={"reminder_after_hours": 48}, headers=shop.auth).json
    assert (again["survey_delay_minutes"], again["reminder_after_hours"]) == (30, 48)
    for bad in ({"survey_delay_minutes": None}, {"support_email": "nope"},
                {"type_map": {"wholesale": "urgent"}}):  # fmt: skip
        assert client.patch(path, json=bad, headers=shop.auth).status_code == 400, bad
    assert client.get(path, headers=shop.auth).json == again


def test_an_sms_ticket_is_surveyed_by_sms_with_a_short_link(
    client, shop, rt, db, customer_and_order
):
    ticket = open_ticket(
        client, shop, external_id="T-2", channel="sms", requester={"phone": "+34612345678"},
        messages=[],
    ).json  # fmt: skip
    assert ticket["customer_id"] is not None  # matched by phone
    client.post(f"/api/v1/tickets/{ticket['id']}/close", json={}, headers=shop.auth)
    sweep(rt)
    with Session(db) as session:
        [message] = session.exec(select(Notification)).all()
    assert (message.kind, message.channel, message.recipient) == ("survey", "sms", "+34612345678")
    context = json.loads(message.context)
    text = rendering.render("survey", "sms", message.locale, context | {"shop_name": "Shop"}).text
    assert context["survey_url"] in text and len(context["survey_url"]) < 80
