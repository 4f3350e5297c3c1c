"""Notifications end to end: a shipment change queues "your order has shipped"
in the same transaction, the worker sends it through a real SMTP server on
loopback or a Twilio stand-in, and delivery reports, STOP, unsubscribe links,
consent, quiet hours, the cap and the templates API all act on it."""

from __future__ import annotations

import base64
import email
import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from flask import Flask, request
from processes import WAIT_TIMEOUT, free_port, serve_wsgi
from sqlmodel import Session, select

from app import jobs, worker
from app.models import ChannelOptOut, Customer, Notification, TemplateOverride
from app.shops import add_shop
from app.web.render_slots import SLOTS
from notifications import outbox
from notifications.smtp import SmtpProvider
from notifications.transports import Transports
from notifications.transports import from_settings as transports_from_settings
from notifications.twilio import TwilioProvider, signature
from notifications.unsubscribe import unsubscribe_url
from support import POSTMARK_HOOK_PASSWORD, TWILIO_SID, TWILIO_TOKEN, load_fixture, set_shop

ORDER_ID = 5001001


# --- the outside world on loopback -------------------------------------------------


class Mailbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port, ready_timeout=WAIT_TIMEOUT)
    controller.start()
    yield box
    controller.stop()


@dataclass
class TwilioStandIn:
    """Twilio's Messages endpoint (2010-04-01) as documented: 201 with a sid,
    or an error body with a code for numbers told to fail."""

    failures: dict[str, int] = field(default_factory=dict)  # number -> Twilio error code
    received: list[dict] = field(default_factory=list)

    def app(self) -> Flask:
        stand_in = Flask("twilio-stand-in")

        @stand_in.post("/2010-04-01/Accounts/<sid>/Messages.json")
        def create(sid):
            expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
            if sid != TWILIO_SID or request.headers.get("Authorization") != f"Basic {expected}":
                return {"code": 20003, "message": "Authenticate", "status": 401}, 401
            form = request.form.to_dict()
            self.received.append(form)
            code = self.failures.get(form["To"])
            if code:
                return {"code": code, "message": "refused", "status": 400}, 400
            return {"sid": f"SM{len(self.received):032d}", "status": "queued"}, 201

        return stand_in


@pytest.fixture
def twilio():
    stand_in = TwilioStandIn()
    with serve_wsgi(stand_in.app()) as url:
        stand_in.url = url
        yield stand_in


@pytest.fixture
def transports(mailbox, twilio) -> Transports:
    return Transports(
        email=SmtpProvider("127.0.0.1", mailbox.port, "none", None, None, 5),
        sms=TwilioProvider(TWILIO_SID, TWILIO_TOKEN, twilio.url, 5),
    )


@pytest.fixture
def send(rt, transports):
    """Run the outbox step of the worker until nothing is due."""
    return lambda: worker.send_due(rt, transports)


def notifications(db) -> list[Notification]:
    with Session(db) as session:
        return list(session.exec(select(Notification).order_by(Notification.id)).all())


def ship(deliver, work) -> None:
    deliver("orders/paid", "orders_paid")
    deliver("fulfillments/create", "fulfillments_create")
    work()


def ship_to_a_phone_only_customer(deliver, work) -> None:
    """The same story for a customer Shopify knows only by phone."""
    deliver("customers/create", load_fixture("shopify", "customers_create") | {"email": None})
    order = load_fixture("shopify", "orders_paid")
    order = order | {"email": None, "contact_email": None,
                     "customer": order["customer"] | {"email": None}}  # fmt: skip
    deliver("orders/paid", order)
    deliver("fulfillments/create", "fulfillments_create")
    work()


# --- queueing ---------------------------------------------------------------------


def test_first_shipment_queues_one_shipping_message_with_the_state_change(shop, deliver, work, db):
    ship(deliver, work)
    [message] = notifications(db)
    assert (message.kind, message.category, message.channel) == (
        "shipping",
        "transactional",
        "email",
    )
    assert (message.recipient, message.locale, message.status) == (
        "ana@example.com",
        "es",
        "queued",
    )
    context = json.loads(message.context)
    assert context["tracking_number"] == "1Z999AA10123456784" and context["carrier"] == "UPS"

    # Retries, updates and a second parcel do not queue it again.
    deliver("fulfillments/create", "fulfillments_create")
    deliver("fulfillments/update", "fulfillments_update")
    second = load_fixture("shopify", "fulfillments_create") | {"id": 6001002}
    deliver("fulfillments/create", second)
    work()
    assert len(notifications(db)) == 1


def test_a_parcel_first_heard_of_out_for_delivery_still_gets_the_shipping_message(
    shop, deliver, work, db
):
    deliver("orders/paid", "orders_paid")
    fulfillment = load_fixture("shopify", "fulfillments_create")
    deliver("fulfillments/create", fulfillment | {"shipment_status": "out_for_delivery"})
    work()
    [message] = notifications(db)
    assert (message.kind, message.status) == ("shipping", "queued")

    # Later news of the same parcel, in or out of order, tells nobody again.
    deliver(
        "fulfillments/update",
        fulfillment | {"shipment_status": "in_transit", "updated_at": "2026-11-21T10:00:00+01:00"},
    )
    deliver(
        "fulfillments/update",
        fulfillment | {"shipment_status": "delivered", "updated_at": "2026-11-21T18:00:00+01:00"},
    )
    work()
    assert len(notifications(db)) == 1


def test_a_parcel_shopify_reports_before_its_order_is_told_once_the_order_arrives(
    shop, deliver, work, db
):
    deliver("fulfillments/create", "fulfillments_create")
    work()
    assert notifications(db) == []  # nobody to tell yet: the order has not arrived

    deliver("orders/paid", "orders_paid")
    deliver("orders/paid", "orders_paid")  # and once more: still one message
    work()
    [message] = notifications(db)
    assert (message.kind, message.recipient, message.status) == (
        "shipping", "ana@example.com", "queued",
    )  # fmt: skip


def test_news_of_a_parcel_that_left_days_ago_tells_nobody(shop, deliver, work, db, clock):
    clock.advance(hours=24 * 4)  # the fulfillment happened on the 21st; now it is the 26th
    ship(deliver, work)
    assert notifications(db) == []


def test_customer_without_email_is_told_by_sms(shop, deliver, work, db):
    ship_to_a_phone_only_customer(deliver, work)
    [message] = notifications(db)
    assert (message.channel, message.recipient) == ("sms", "+34612345678")


def test_a_suppressed_message_names_the_channel_of_the_address_it_was_about(
    shop, deliver, work, db, rt
):
    with Session(db) as session:  # the number texted STOP before the order
        outbox.opt_out(session, shop.id, "sms", "+34612345678", "STOP", rt.clock.now())
        session.commit()
    ship_to_a_phone_only_customer(deliver, work)
    [message] = notifications(db)
    assert message.status == "suppressed"
    assert (message.channel, message.recipient) == ("sms", "+34612345678")


def test_nobody_reachable_is_recorded_as_suppressed_with_the_reason(
    shop, deliver, work, db, client
):
    order = load_fixture("shopify", "orders_paid")
    order = order | {"email": None, "contact_email": None, "phone": None,
                     "customer": order["customer"] | {"email": None, "phone": None}}  # fmt: skip
    deliver("orders/paid", order)
    deliver("fulfillments/create", "fulfillments_create")
    work()
    listing = client.get(f"/api/v1/notifications?order_id={ORDER_ID}", headers=shop.auth).json
    [message] = listing["notifications"]
    assert message["status"] == "suppressed"
    assert message["status_detail"] == "email: no address; sms: no address"


# --- sending ---------------------------------------------------------------------------


def test_email_goes_through_smtp_in_the_customers_language(shop, deliver, work, db, send, mailbox):
    ship(deliver, work)
    assert send() == 1

    [mail] = mailbox.messages
    assert mail["To"] == "ana@example.com"
    assert "1001" in mail["Subject"]
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "https://www.ups.com" in html and "1Z999AA10123456784" in text
    assert "<style" not in html  # inlined for mail clients
    assert "List-Unsubscribe" not in mail  # transactional
    [message] = notifications(db)
    assert (message.status, message.provider) == ("sent", "smtp")
    assert message.provider_message_id == mail["Message-ID"]


def test_a_shipping_message_the_delivery_overtook_is_dropped_with_the_reason(
    shop, deliver, work, db, send, mailbox
):
    ship(deliver, work)  # queued: "your order is on its way"
    delivered = load_fixture("shopify", "fulfillments_update") | {
        "shipment_status": "delivered",
        "updated_at": "2026-11-21T18:00:00+01:00",
    }
    deliver("fulfillments/update", delivered)
    work()

    send()

    assert mailbox.messages == []
    [message] = notifications(db)
    assert message.status == "suppressed"
    assert "the order is delivered" in message.status_detail


def test_a_message_tells_the_delivery_date_as_it_is_when_it_leaves(
    shop, deliver, work, db, send, mailbox
):
    first = load_fixture("shopify", "fulfillments_create")
    deliver("orders/paid", "orders_paid")
    deliver("fulfillments/create", first | {"estimated_delivery_at": "2026-11-24T18:00:00+01:00"})
    work()
    revised = load_fixture("shopify", "fulfillments_update") | {
        "estimated_delivery_at": "2026-11-29T18:00:00+01:00"
    }
    deliver("fulfillments/update", revised)  # a later exception moved the date
    work()

    send()

    # The revision past the first estimate is a delay of its own (tests/test_rules.py);
    # the "shipped" message tells the date as it is now.
    [mail] = [m for m in mailbox.messages if "enviado" in m["Subject"] or "camino" in m["Subject"]]
    text = mail.get_body(("plain",)).get_content()
    assert "29 nov 2026" in text and "24 nov 2026" not in text, text


def test_sms_goes_through_twilio_with_a_status_callback(shop, deliver, work, db, send, twilio):
    set_shop(db, shop.id, sms_from="+34900000000")
    ship_to_a_phone_only_customer(deliver, work)
    send()

    [form] = twilio.received
    assert (form["To"], form["From"]) == ("+34612345678", "+34900000000")
    assert form["StatusCallback"] == "http://127.0.0.1:8000/webhooks/twilio/status"
    [message] = notifications(db)
    assert (message.status, message.provider_message_id) == ("sent", "SM" + "1".zfill(32))
    assert message.segments >= 1


def twilio_post(client, path: str, form: dict[str, str]):
    url = f"http://127.0.0.1:8000{path}"
    headers = {"X-Twilio-Signature": signature(TWILIO_TOKEN, url, form)}
    return client.post(path, data=form, headers=headers)


@pytest.fixture
def sms_sent(shop, deliver, work, db, send, twilio):
    ship_to_a_phone_only_customer(deliver, work)
    send()
    [message] = notifications(db)
    return message


def test_twilio_delivery_report_marks_the_message_delivered(client, db, sms_sent):
    form = {"MessageSid": sms_sent.provider_message_id, "MessageStatus": "delivered",
            "To": "+34612345678", "AccountSid": TWILIO_SID}  # fmt: skip
    assert twilio_post(client, "/webhooks/twilio/status", form).status_code == 200
    assert notifications(db)[0].status == "delivered"


def test_twilio_report_with_a_bad_signature_changes_nothing(client, db, sms_sent):
    form = {"MessageSid": sms_sent.provider_message_id, "MessageStatus": "delivered"}
    response = client.post(
        "/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": "AAAA"}
    )
    assert response.status_code == 401
    assert notifications(db)[0].status == "sent"


def test_inbound_stop_unsubscribes_the_number_and_start_resubscribes(client, db, shop, sms_sent):
    stop = {"From": "+34612345678", "To": "+15005550006", "Body": " Stop ",
            "MessageSid": "SMin1", "AccountSid": TWILIO_SID}  # fmt: skip
    assert twilio_post(client, "/webhooks/twilio/inbound", stop).status_code == 200
    with Session(db) as session:
        [opt_out] = session.exec(select(ChannelOptOut)).all()
    assert (opt_out.channel, opt_out.address, opt_out.shop_id) == ("sms", "+34612345678", shop.id)

    twilio_post(client, "/webhooks/twilio/inbound", stop | {"Body": "START", "MessageSid": "SMin2"})
    with Session(db) as session:
        assert session.exec(select(ChannelOptOut)).all() == []


def test_twilio_21610_is_permanent_and_records_the_opt_out(shop, deliver, work, db, send, twilio):
    twilio.failures["+34612345678"] = 21610
    ship_to_a_phone_only_customer(deliver, work)
    send()
    [message] = notifications(db)
    assert message.status == "failed" and "21610" in message.status_detail
    with Session(db) as session:
        assert outbox.opted_out(session, shop.id, "sms", "+34612345678")


def test_opt_out_after_queueing_suppresses_at_send_time(shop, deliver, work, db, send, mailbox, rt):
    ship(deliver, work)
    with Session(db) as session:
        outbox.opt_out(session, shop.id, "email", "ana@example.com", "test", rt.clock.now())
        session.commit()
    send()
    assert mailbox.messages == []
    assert notifications(db)[0].status == "suppressed"


def test_a_message_for_a_channel_without_a_provider_stays_queued_with_the_reason(
    shop, deliver, work, db, rt, settings, client
):
    ship(deliver, work)  # an email, and no email provider: the operator chose "hold"
    held = transports_from_settings(replace(settings, without_provider="hold"))

    worker.send_due(rt, held)

    listing = client.get(f"/api/v1/notifications?order_id={ORDER_ID}", headers=shop.auth).json
    [message] = listing["notifications"]
    assert message["status"] == "queued"
    assert "no email provider configured (set SMTP_HOST" in message["status_detail"]
    assert not (settings.instance_dir / "outbox").exists()  # nothing "sent" into a folder


def test_without_a_provider_in_development_messages_are_files_in_the_instance_dir(
    shop, deliver, work, db, rt, settings
):
    ship(deliver, work)
    worker.send_due(rt, transports_from_settings(settings))
    assert notifications(db)[0].status == "sent"
    assert len(list((settings.instance_dir / "outbox" / "email").glob("*.eml"))) == 1


def test_sms_in_quiet_hours_is_deferred_to_the_morning_not_dropped(
    shop, deliver, work, db, send, twilio, clock
):
    set_shop(db, shop.id, timezone="Europe/Madrid")
    clock.current = clock.current.replace(hour=22, minute=30)  # 23:30 in Madrid
    ship_to_a_phone_only_customer(deliver, work)
    send()
    [message] = notifications(db)
    assert message.status == "queued" and twilio.received == []
    assert message.next_attempt_at == clock.current.replace(hour=7, minute=0) + timedelta(days=1)
    assert message.attempts == 0

    clock.current = message.next_attempt_at
    send()
    assert notifications(db)[0].status == "sent" and len(twilio.received) == 1


def test_frequency_cap_defers_a_second_message_within_the_day(
    shop, deliver, work, db, send, mailbox, clock
):
    set_shop(db, shop.id, daily_message_cap=1)
    ship(deliver, work)
    send()
    second = load_fixture("shopify", "orders_paid") | {"id": 5001999, "name": "#1999"}
    deliver("orders/paid", second)
    deliver("fulfillments/create", load_fixture("shopify", "fulfillments_create") | {
        "id": 6001999, "order_id": 5001999})  # fmt: skip
    work()
    send()
    later = notifications(db)[1]
    assert later.status == "queued" and later.status_detail == "frequency cap reached"
    assert len(mailbox.messages) == 1


def test_transient_failure_backs_off_then_dead_letters_after_the_bound(
    shop, deliver, work, db, rt, clock
):
    ship(deliver, work)
    down = Transports(email=SmtpProvider("127.0.0.1", 1, "none", None, None, 2), sms=None)
    worker.send_due(rt, down)
    [message] = notifications(db)
    assert message.status == "queued" and message.attempts == 1
    assert message.next_attempt_at > clock.now()
    for _ in range(rt.settings.outbox_max_attempts):
        clock.advance(hours=3)
        worker.send_due(rt, down)
    [message] = notifications(db)
    assert message.status == "dead" and message.attempts == rt.settings.outbox_max_attempts


def test_a_claimed_message_whose_worker_died_is_sent_after_the_lease(
    shop, deliver, work, db, rt, clock, send, mailbox
):
    ship(deliver, work)
    lease = timedelta(seconds=rt.settings.outbox_lease_seconds)
    outbox.claim(rt.engine, clock.now(), 10, lease)  # the worker dies right here
    assert send() == 0  # still leased
    clock.advance(seconds=rt.settings.outbox_lease_seconds + 1)
    assert send() == 1
    assert len(mailbox.messages) == 1
    [message] = notifications(db)
    assert message.status == "sent" and message.attempts == 2


class WorkerKilled(BaseException):
    """What a SIGKILL does to the worker: nothing after it runs."""


@dataclass
class DiesAfterTheRelayAccepts:
    """An email transport whose worker is killed right after the relay took
    the batch, before the outbox could record it as sent."""

    relay: SmtpProvider
    name: str = "smtp"

    def send_batch(self, messages):
        self.relay.send_batch(messages)
        raise WorkerKilled


def test_a_copy_sent_again_after_a_worker_died_keeps_its_message_id(
    shop, deliver, work, rt, clock, transports, send, mailbox
):
    ship(deliver, work)
    dying = Transports(email=DiesAfterTheRelayAccepts(transports.email), sms=transports.sms)
    with pytest.raises(WorkerKilled):
        worker.send_due(rt, dying)
    clock.advance(seconds=rt.settings.outbox_lease_seconds + 1)
    assert send() == 1  # the claim of the dead worker is taken over and sent again

    first, again = mailbox.messages
    assert first["Message-ID"] == again["Message-ID"]


def test_history_of_each_message_is_listed_by_order(shop, deliver, work, send, client, mailbox):
    ship(deliver, work)
    send()
    response = client.get(f"/api/v1/notifications?order_id={ORDER_ID}", headers=shop.auth)
    [message] = response.json["notifications"]
    assert [h["status"] for h in message["history"]] == ["queued", "sending", "sent"]
    other = client.get("/api/v1/notifications?order_id=999", headers=shop.auth).json
    assert other["notifications"] == []


# --- unsubscribe and email reports ------------------------------------------------------


def test_one_click_unsubscribe_records_the_opt_out(client, shop, settings, db):
    url = unsubscribe_url(settings, shop.id, "email", "ana@example.com")
    path = url.removeprefix(settings.public_url)
    page = client.get(path)
    assert page.status_code == 200 and b"ana@example.com" in page.data
    with Session(db) as session:
        assert session.exec(select(ChannelOptOut)).all() == []  # a GET changes nothing

    response = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    with Session(db) as session:
        [opt_out] = session.exec(select(ChannelOptOut)).all()
    assert (opt_out.channel, opt_out.address) == ("email", "ana@example.com")


def test_a_tampered_unsubscribe_link_is_refused(client, shop, settings, db):
    url = unsubscribe_url(settings, shop.id, "email", "ana@example.com")
    path = url.removeprefix(settings.public_url)
    assert client.post(path[:-3] + "abc").status_code == 404
    with Session(db) as session:
        assert session.exec(select(ChannelOptOut)).all() == []


def test_postmark_hard_bounce_marks_the_message_and_stops_the_address(
    client, shop, deliver, work, db, send, mailbox
):
    ship(deliver, work)
    send()
    [message] = notifications(db)
    bounce = load_fixture("postmark", "webhook_bounce_hard") | {
        "MessageID": message.provider_message_id, "Email": "ana@example.com"}  # fmt: skip
    credentials = base64.b64encode(f"postmark:{POSTMARK_HOOK_PASSWORD}".encode()).decode()
    unauthorised = client.post("/webhooks/email/postmark", json=bounce)
    assert unauthorised.status_code == 401
    response = client.post(
        "/webhooks/email/postmark", json=bounce, headers={"Authorization": f"Basic {credentials}"}
    )
    assert response.status_code == 200
    assert notifications(db)[0].status == "bounced"
    with Session(db) as session:
        assert session.exec(select(ChannelOptOut.reason)).all() == ["hard bounce"]


# --- templates and settings -------------------------------------------------------------


def test_a_shops_own_template_is_used_for_its_messages(client, shop, deliver, work, send, mailbox):
    template = {"subject": "Pedido {{ order_name }} enviado", "html": "<p>{{ carrier }}</p>",
                "text": "Va con {{ carrier }}."}  # fmt: skip
    saved = client.put("/api/v1/templates/shipping/email/es", json=template, headers=shop.auth)
    assert saved.status_code == 200
    ship(deliver, work)
    send()
    [mail] = mailbox.messages
    assert mail["Subject"] == "Pedido #1001 enviado"
    assert mail.get_body(("plain",)).get_content().strip() == "Va con UPS."


SCRIPT_LINKS = [
    '<a href="javascript:alert(document.cookie)">Track</a>',
    "<a href=' JaVa&#x09;ScRiPt:alert(1)'>Track</a>",
    '<a/href="data:text/html,<script>alert(1)</script>">Track</a>',
    '<img src="javascript:alert(1)">',
]


@pytest.mark.parametrize("link", SCRIPT_LINKS)
def test_a_template_linking_anything_but_http_or_mailto_is_refused(client, shop, link):
    template = {"subject": "Shipped", "html": f"<p>{link}</p>", "text": "Shipped"}
    saved = client.put("/api/v1/templates/shipping/email/en", json=template, headers=shop.auth)
    preview = client.post("/api/v1/templates/preview", json=template, headers=shop.auth)
    for response in (saved, preview):
        assert response.status_code == 422
        [problem] = response.json["error"]["problems"]
        assert problem["field"] == "html" and "http, https or mailto" in problem["message"]
    fine = {
        **template,
        "html": '<a href="https://x.example/t">T</a> <a href="mailto:a@x.example">M</a>',
    }
    response = client.post("/api/v1/templates/preview", json=fine, headers=shop.auth)
    assert response.status_code == 200
    assert 'href="https://x.example/t"' in response.json["html"]
    assert 'href="mailto:a@x.example"' in response.json["html"]


MARKUP = [
    # CSS reaches URLs too, escapes and all, and strings in image-set().
    ('<span style="background:url(javascript:alert(1))">Track</span>', "a style may only"),
    ('<span style="background:url(&quot;jav\\61script:alert(1)&quot;)">T</span>', "a style may"),
    ("<style>p { background: url('javascript:alert(1)') }</style>Track", "a style may only"),
    ("<p style=\"background:image-set('javascript:alert(1)' 1x)\">T</p>", "a style may only"),
    # Elements and attributes that run, load or submit, however they are spelt.
    ('<meta http-equiv="refresh" content="0; url=javascript:alert(1)">Track', "<meta>"),
    ('<meta content="0;url=javascript:alert(1)" http-equiv="refresh">Track', "<meta>"),
    ('<meta name="a>b" http-equiv="refresh" content="0;url=javascript:1">T', "<meta>"),
    ("<script>alert(1)</script>Track", "<script>"),
    ('<iframe srcdoc="<script>alert(1)</script>"></iframe>Track', "<iframe>"),
    ('<svg><animate attributeName="href" to="javascript:alert(1)"/></svg>', "<svg>"),
    ('<p onclick="alert(1)">Track</p>', "onclick"),
]


@pytest.mark.parametrize(("html", "words"), MARKUP)
def test_a_template_with_markup_that_runs_or_loads_is_refused(client, shop, html, words):
    template = {"subject": "Shipped", "html": f"<p>{html}</p>", "text": "Shipped"}
    saved = client.put("/api/v1/templates/shipping/email/en", json=template, headers=shop.auth)
    preview = client.post("/api/v1/templates/preview", json=template, headers=shop.auth)
    for response in (saved, preview):
        assert response.status_code == 422
        problems = response.json["error"]["problems"]
        assert any(words in p["message"] for p in problems), problems
        assert {p["field"] for p in problems} == {"html"}


def test_a_template_may_loop_over_and_show_a_list_and_never_shows_python(client, shop):
    template = {
        "subject": "{{ order_name }}: {{ causes }}",
        "html": "<ul>{% for c in causes %}<li>{{ c }}</li>{% endfor %}</ul><p>{{ carrier }}</p>",
        "text": "{% for c in causes %}{{ c }} {% endfor %}{% if 'stalled' in causes %}!{% endif %}",
    }
    saved = client.put("/api/v1/templates/delay/email/en", json=template, headers=shop.auth)
    assert saved.status_code == 200, saved.json  # a missing list loops over nothing
    preview = client.post("/api/v1/templates/preview", json=template | {"kind": "delay"},
                          headers=shop.auth).json  # fmt: skip
    assert "[" not in preview["subject"] and "'" not in preview["subject"]
    assert "<li>" in preview["html"] and "None" not in preview["html"]


@pytest.mark.parametrize(("html", "words"), [
    ("<p>{{ self }}</p>", "'self' is not one of the message's values"),
    ("<p>{{ order_name.upper.x }}</p>", "a value that is not there"),
    ("<p>{{ total > 'a' }}</p>", "cannot be shown with some values"),
])  # fmt: skip
def test_a_template_problem_is_told_in_plain_words(client, shop, html, words):
    template = {"subject": "Shipped", "html": html, "text": "Shipped"}
    response = client.put("/api/v1/templates/shipping/email/en", json=template, headers=shop.auth)
    assert response.status_code == 422
    [problem] = response.json["error"]["problems"]
    assert words in problem["message"]
    assert not any(w in problem["message"] for w in ("Error", "NoneType", "object", "'str'"))


def test_a_saved_template_over_its_step_budget_at_send_time_falls_back_to_ours(
    client, shop, deliver, work, send, mailbox, db
):
    # 300 steps a character: the sample's 55-character URL passes (16,500),
    # a carrier's 1,000-character one would take 300,000 of the 200,000.
    loop = "{% for c in tracking_url or '' %}" + "{% if c %}{% endif %}" * 150 + "{% endfor %}"
    template = {"subject": "Enviado", "html": f"<p>Suyo{loop}</p>", "text": "Suyo"}
    saved = client.put("/api/v1/templates/shipping/email/es", json=template, headers=shop.auth)
    assert saved.status_code == 200
    deliver("orders/paid", "orders_paid")
    long_url = "https://track.example/" + "x" * 1000
    fulfillment = load_fixture("shopify", "fulfillments_create")
    deliver("fulfillments/create", fulfillment | {"tracking_url": long_url,
                                                  "tracking_urls": [long_url]})  # fmt: skip
    work()
    send()

    [mail] = mailbox.messages
    assert mail["Subject"] != "Enviado" and "Suyo" not in mail.get_body(("plain",)).get_content()
    [message] = notifications(db)
    assert message.status == "sent"


def test_a_script_link_from_a_carrier_is_not_a_link_in_the_sent_email(
    client, shop, deliver, work, send, mailbox
):
    template = {"subject": "Shipped", "html": '<a href="{{ tracking_url }}">Track</a>',
                "text": "Shipped"}  # fmt: skip
    assert (
        client.put(
            "/api/v1/templates/shipping/email/es", json=template, headers=shop.auth
        ).status_code
        == 200
    )
    deliver("orders/paid", "orders_paid")
    fulfillment = load_fixture("shopify", "fulfillments_create")
    hostile = "javascript:alert(document.cookie)"
    deliver(
        "fulfillments/create", fulfillment | {"tracking_url": hostile, "tracking_urls": [hostile]}
    )
    work()
    send()

    [mail] = mailbox.messages
    html = mail.get_body(("html",)).get_content()
    assert "Track</a>" in html and "javascript:" not in html


@pytest.mark.parametrize(
    ("template", "line", "words"),
    [
        ({"text": "Hola\n{{ order_name "}, 2, "expected"),
        ({"text": "{{ ''.__class__.__mro__ }}"}, None, ""),
        ({"text": "{{ secret_key }}"}, None, "secret_key"),
    ],
)
def test_a_broken_or_hostile_template_is_refused_with_the_reason(
    client, shop, db, template, line, words
):
    response = client.put("/api/v1/templates/shipping/sms/es", json=template, headers=shop.auth)
    assert response.status_code == 422
    problems = response.json["error"]["problems"]
    assert problems and (line is None or problems[0]["line"] == line)
    assert words in " ".join(p["message"] for p in problems)


HOSTILE_TEMPLATES = {
    "99 KB of [0]": ("{{ order_name" + "[0]" * 33_000 + " }}", "more than 200 parts"),
    "300 brackets": ("{{ " + "(" * 300 + "carrier" + ")" * 300 + " }}", "brackets are nested"),
    "300 blocks": ("{% if carrier %}" * 300 + "x" + "{% endif %}" * 300, "blocks are nested"),
    "a.b.c... 100 deep": ("{{ carrier" + ".x" * 99 + " }}", "nested more than 50 deep"),
    "4,301 digits": ("{{ " + "9" * 4301 + " }}", "number is longer"),
    "NUL": ("Shipped\x00 {{ carrier }}", "NUL"),
    "lone surrogate": ("Shipped \ud800", "not Unicode"),
    "1,001 tags": ("{{ carrier }}" * 1001, "more than 1,000 tags"),
}


@pytest.mark.parametrize(("template", "words"), HOSTILE_TEMPLATES.values(), ids=HOSTILE_TEMPLATES)
def test_templates_past_the_bounds_are_refused_at_save_and_preview_with_the_reason(
    client, shop, db, template, words
):
    saved = client.put(
        "/api/v1/templates/shipping/sms/en", json={"text": template}, headers=shop.auth
    )
    preview = client.post(
        "/api/v1/templates/preview",
        json={"kind": "shipping", "channel": "sms", "text": template},
        headers=shop.auth,
    )
    for response in (saved, preview):
        assert response.status_code == 422
        assert words in response.json["error"]["problems"][0]["message"]
    with Session(db) as session:
        assert session.exec(select(TemplateOverride)).all() == []


def test_a_flood_of_renders_from_one_shop_cannot_take_the_other_shops_turns(
    client, shop, other_shop, db, clock
):
    preview = {"kind": "shipping", "channel": "sms", "text": "{{ carrier }}"}

    def post(auth):
        return client.post("/api/v1/templates/preview", json=preview, headers=auth)

    with Session(db) as session:
        _, third = add_shop(session, "third-store.myshopify.com", clock.now())
        session.commit()
    third_auth = {"Authorization": f"Bearer {third}"}
    assert SLOTS.take(shop.id) is None  # a render of this shop is running
    try:
        busy = post(shop.auth)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        saving = client.put(
            "/api/v1/templates/shipping/sms/en", json={"text": "{{ carrier }}"}, headers=shop.auth
        )
        assert saving.status_code == 429
        assert post(other_shop.auth).status_code == 200  # another shop still has its turn
        assert SLOTS.take(other_shop.id) is None  # now two renders are running
        try:
            full = post(third_auth)
            assert full.status_code == 503 and full.headers["Retry-After"] == "1"
        finally:
            SLOTS.give_back(other_shop.id)
    finally:
        SLOTS.give_back(shop.id)
    assert post(shop.auth).status_code == 200 and post(third_auth).status_code == 200


def test_preview_renders_sample_data_in_the_chosen_language(client, shop):
    response = client.post(
        "/api/v1/templates/preview",
        json={"kind": "shipping", "channel": "email", "locale": "ru"},
        headers=shop.auth,
    )
    assert response.status_code == 200
    assert "Трек-номер" in response.json["html"] and response.json["subject"]


def test_notification_settings_are_validated_and_saved(client, shop):
    bad = client.patch(
        "/api/v1/settings/notifications", json={"quiet_hours_start": "9pm"}, headers=shop.auth
    )
    assert bad.status_code == 400 and "HH:MM" in bad.json["error"]["message"]
    good = client.patch(
        "/api/v1/settings/notifications",
        json={"quiet_hours_start": "22:00", "timezone": "Europe/Moscow", "daily_message_cap": 2},
        headers=shop.auth,
    )
    assert good.status_code == 200
    assert good.json["quiet_hours_start"] == "22:00" and good.json["timezone"] == "Europe/Moscow"


@pytest.mark.parametrize(("change", "field", "status"), [
    ({"quiet_hours_start": "\uff12\uff11:00"}, "quiet_hours_start", 400),  # full-width digits
    ({"quiet_hours_start": "24:00"}, "quiet_hours_start", 400),
    ({"timezone": "localtime"}, "timezone", 400),  # this machine's zone, not a place
    ({"timezone": "Factory"}, "timezone", 400),
    ({"timezone": "EST"}, "timezone", 400),  # a fixed offset: no daylight saving
    ({"timezone": "Etc/GMT+5"}, "timezone", 400),  # five hours behind GMT, not ahead
    ({"locale": "xx"}, "locale", 400),  # shaped like a language, and none
    ({"quiet_hours_start": "08:00"}, "quiet_hours_start", 422),  # ends at 08:00: no window
    ({"quiet_hours_start": "07:00", "quiet_hours_end": "07:00"}, "quiet_hours_end", 422),
    ({"quiet_hours_start": "8:00"}, "quiet_hours_start", 422),  # the same time as 08:00
])  # fmt: skip
def test_settings_that_cannot_work_are_refused_and_change_nothing(
    client, shop, change, field, status
):
    before = client.get("/api/v1/settings/notifications", headers=shop.auth).json
    response = client.patch("/api/v1/settings/notifications", json=change, headers=shop.auth)
    assert response.status_code == status
    assert field in response.json["error"]["message"]
    assert client.get("/api/v1/settings/notifications", headers=shop.auth).json == before


def queue_for_ana(
    db,
    shop_id: int,
    now,
    count: int,
    *,
    category: str = "transactional",
    context: dict | None = None,
) -> None:
    """`count` shipping emails to the one customer, each under its own key."""
    context = {"order_name": "#1001"} if context is None else context
    with Session(db) as session:
        customer = session.exec(select(Customer)).one()
        for n in range(count):
            outbox.enqueue(
                session, shop_id=shop_id, key=f"customer:7001001:test:{n}", kind="shipping",
                category=category, channel="email", recipient="ana@example.com",
                locale="en", context=context, now=now, customer_id=customer.id,
            )  # fmt: skip
        session.commit()


def test_marketing_email_carries_a_one_click_unsubscribe_that_works(
    shop, deliver, work, db, rt, send, mailbox, client, settings
):
    deliver("orders/paid", "orders_paid")
    deliver("customers_email_marketing_consent/update", "customers_email_marketing_consent_update")
    work()
    marketing = {"order_name": "#1001", "carrier": "UPS"}
    queue_for_ana(db, shop.id, rt.clock.now(), 1, category="marketing", context=marketing)
    send()

    [mail] = mailbox.messages
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail["List-Unsubscribe"].strip("<>")
    assert link.startswith(f"{settings.public_url}/u/")
    assert link in mail.get_body(("html",)).get_content()
    # What a mail client does on "unsubscribe" (RFC 8058): a POST, no page.
    client.post(link.removeprefix(settings.public_url), data="List-Unsubscribe=One-Click",
                content_type="application/x-www-form-urlencoded")  # fmt: skip
    with Session(db) as session:
        assert outbox.opted_out(session, shop.id, "email", "ana@example.com")


def test_marketing_without_consent_is_suppressed_at_send_time(shop, deliver, work, db, rt, send):
    deliver("orders/paid", "orders_paid")
    work()
    queue_for_ana(db, shop.id, rt.clock.now(), 1, category="marketing")
    send()
    [message] = notifications(db)
    assert (message.status, message.status_detail) == ("suppressed", "email: no marketing consent")


def test_a_sender_with_a_display_name_is_refused_when_saved(client, shop):
    response = client.patch(
        "/api/v1/settings/notifications",
        json={"email_from": "Support <help@shop.com>"},
        headers=shop.auth,
    )
    assert response.status_code == 400
    assert "email_from" in response.json["error"]["message"]


def test_a_message_that_cannot_be_prepared_fails_alone_and_the_batch_goes_on(
    shop, other_shop, deliver, work, db, send, mailbox
):
    set_shop(db, shop.id, email_from="help@shop.com>")  # bad data that predates validation
    ship(deliver, work)
    deliver("orders/paid", "orders_paid", domain=other_shop.domain)
    deliver("fulfillments/create", "fulfillments_create", domain=other_shop.domain)
    work()
    send()
    statuses = {n.shop_id: (n.status, n.status_detail or "") for n in notifications(db)}
    assert statuses[shop.id][0] == "failed" and "cannot prepare" in statuses[shop.id][1]
    assert statuses[other_shop.id][0] == "sent"
    assert len(mailbox.messages) == 1


def test_the_cap_holds_within_one_batch(shop, deliver, work, db, send, mailbox, rt):
    set_shop(db, shop.id, daily_message_cap=2)
    deliver("orders/paid", "orders_paid")
    work()
    queue_for_ana(db, shop.id, rt.clock.now(), 4)
    send()
    assert len(mailbox.messages) == 2
    assert sorted(n.status for n in notifications(db)) == ["queued", "queued", "sent", "sent"]


def test_the_cap_counts_messages_another_worker_is_still_sending(
    shop, deliver, work, db, send, mailbox, rt
):
    set_shop(db, shop.id, daily_message_cap=2)
    deliver("orders/paid", "orders_paid")
    work()
    queue_for_ana(db, shop.id, rt.clock.now(), 3)
    lease = timedelta(seconds=rt.settings.outbox_lease_seconds)
    # Another worker holds two of them: with the provider, not yet recorded.
    in_flight = outbox.claim(rt.engine, rt.clock.now(), 2, lease)

    send()

    assert len(in_flight) == 2 and mailbox.messages == []
    assert sorted((n.status, n.status_detail) for n in notifications(db)) == [
        ("queued", "frequency cap reached"), ("sending", None), ("sending", None),
    ]  # fmt: skip


def test_a_worker_whose_lease_ran_out_does_not_record_over_the_new_holder(
    shop, deliver, work, db, rt, clock
):
    ship(deliver, work)
    lease = timedelta(seconds=rt.settings.outbox_lease_seconds)
    slow = outbox.claim(rt.engine, clock.now(), 10, lease)
    clock.advance(seconds=rt.settings.outbox_lease_seconds + 1)
    fresh = outbox.claim(rt.engine, clock.now(), 10, lease)
    assert [n.id for n in fresh] == [n.id for n in slow]
    with Session(db) as session:
        assert outbox.still_ours(session, slow) == set()
        assert outbox.still_ours(session, fresh) == {n.id for n in fresh}


def test_preview_uses_the_template_a_message_in_that_locale_would_use(client, shop):
    template = {"subject": "Pedido {{ order_name }}", "html": "<p>{{ carrier }}</p>",
                "text": "Va con {{ carrier }}."}  # fmt: skip
    client.put("/api/v1/templates/shipping/email/es", json=template, headers=shop.auth)
    response = client.post(
        "/api/v1/templates/preview",
        json={"kind": "shipping", "channel": "email", "locale": "es-MX"},
        headers=shop.auth,
    )
    assert response.status_code == 200
    assert response.json["subject"].startswith("Pedido ")
    assert response.json["text"].startswith("Va con ")
    assert (
        client.delete("/api/v1/templates/shipping/email/es", headers=shop.auth).status_code == 204
    )
    assert (
        client.delete("/api/v1/templates/shipping/email/es", headers=shop.auth).status_code == 404
    )


def test_a_late_order_is_told_by_email_from_webhook_to_smtp(
    shop, deliver, work, send, mailbox, clock, rt
):
    deliver("orders/paid", "orders_paid")  # placed Friday the 20th; not shipped since
    work()
    clock.advance(days=5)  # past the promise (Tuesday) and its 72 hours of grace
    jobs.enqueue_shop_jobs(rt)  # the scheduler's part
    jobs.run_shop_jobs(rt)  # a worker's: the rules' sweep
    send()
    send()
    [mail] = mailbox.messages
    assert mail["To"] == "ana@example.com"
    assert mail["Subject"] == "Tu pedido #1001 se retrasa"
    text = mail.get_body(("plain",)).get_content()
    assert "aún no ha salido de nuestro almacén" in text, text
