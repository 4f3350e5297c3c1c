"""CSAT surveys: who is asked and when (the per-shop sweep), the signed
link and its page (a scanner opening it records nothing; forgery, reuse on
another ticket and expiry are refused), and the low-rating alert."""

from __future__ import annotations

import copy
import email
import json
import re
from datetime import UTC, datetime, timedelta
from email import policy as email_policy

import pytest
from shopify_standin import installed_runtime, serving
from sqlmodel import Session, select
from test_helpdesk_webhooks import post_gorgias

from app import jobs, recovery, worker
from app.models import Notification, ShopJob, SupportSettings, Survey, Ticket
from app.providers import connect
from app.surveys import form_token, token_for
from app.web.survey import TEXT
from integrations.shopify_admin import AdminError
from notifications.transports import from_settings as transports_from_settings
from support import load_fixture


@pytest.fixture
def customer_and_order(deliver, work):
    assert deliver("customers/create", "customers_create").status_code == 200
    assert deliver("orders/create", "orders_create").status_code == 200
    work()


def close_a_gorgias_ticket(client, rt, shop, **changes):
    """Connect Gorgias, deliver the closed ticket, and run the survey sweep."""
    return gorgias_sender(client, rt, shop)(**changes)


def rating_links(rt, settings) -> dict[int, str]:
    """Sweep, send the survey email (to the development outbox folder), and
    read its five star links: {rating: path}."""
    sweep(rt)
    worker.drain(rt)
    worker.send_due(rt, transports_from_settings(settings))
    [eml] = (settings.instance_dir / "outbox" / "email").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    html = message.get_body(("html",)).get_content()
    return {
        int(r): f"{path}?r={r}" for path, r in re.findall(r'href="[^"]*(/s/[^"?]+)\?r=(\d)"', html)
    }


@pytest.fixture
def gorgias(client, rt, shop):
    """Deliver a Gorgias ticket body (the closed fixture, changed)."""
    return gorgias_sender(client, rt, shop)


def gorgias_sender(client, rt, shop):
    with Session(rt.engine) as session:
        issued = connect(session, rt.secrets, shop.id, "gorgias", None, rt.clock.now())
        session.commit()
    url, header = f"/webhooks/helpdesk/gorgias?key={issued.url_key}", issued.secret_header

    def send(ticket_id=42001, status="closed", at="2026-11-22T10:00:00", **changes):
        body = copy.deepcopy(load_fixture("gorgias", "ticket_closed"))
        body["ticket"] |= {"id": ticket_id, "status": status, "updated_datetime": at, **changes}
        response = post_gorgias(client, url, header, body)
        assert response.status_code == 200, response.json
        return response

    return send


def sweep(rt) -> None:
    """What the scheduler and a worker do: queue the due shop jobs, run them."""
    jobs.enqueue_shop_jobs(rt)
    jobs.run_shop_jobs(rt)


def surveys(db) -> list[Survey]:
    with Session(db) as session:
        return list(session.exec(select(Survey).order_by(Survey.id)).all())


def survey_notifications(db, kind="survey") -> list[Notification]:
    with Session(db) as session:
        query = select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        return list(session.exec(query).all())


def set_support(db, shop_id: int, **values) -> None:
    with Session(db) as session:
        row = session.exec(
            select(SupportSettings).where(SupportSettings.shop_id == shop_id)
        ).first() or SupportSettings(shop_id=shop_id, updated_at=datetime.now(UTC))
        for name, value in values.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()


def survey_link(rt, db) -> str:
    [survey] = surveys(db)
    return f"/s/{token_for(rt.settings.secret_key, survey)}"


# --- who is asked, and when --------------------------------------------------


def test_a_closed_ticket_gets_one_email_survey_with_five_star_links_and_the_agent_when_sent(
    gorgias, work, rt, db, settings, customer_and_order
):
    gorgias()
    work()
    sweep(rt)
    [survey] = surveys(db)
    assert (survey.agent, survey.channel, survey.sent_at) == (
        "sam@northwind.example", "email", rt.clock.now()
    )  # fmt: skip
    # Automations unassign on close: the agent stays who it was when sent.
    gorgias(at="2026-11-22T10:05:00", assignee_user=None)
    work()
    assert surveys(db)[0].agent == "sam@northwind.example"

    links = rating_links(rt, settings)
    assert links == {r: f"{survey_link(rt, db)}?r={r}" for r in range(1, 6)}
    with Session(db) as session:
        assert session.exec(select(Notification.recipient)).one() == "ana@example.com"


def test_reopened_and_reclosed_ticket_is_not_surveyed_twice(
    gorgias, work, rt, db, clock, customer_and_order
):
    gorgias()
    work()
    sweep(rt)
    gorgias(status="open", at="2026-11-22T10:30:00")
    gorgias(status="closed", at="2026-11-22T11:00:00")
    work()
    with Session(db) as session:  # not due again (the cool-down is not what stops it)
        assert session.exec(select(Ticket.survey_due_at)).one() is None
    clock.advance(minutes=10)
    sweep(rt)
    assert len(surveys(db)) == 1 and len(survey_notifications(db)) == 1


def test_the_shops_delay_holds_the_survey_and_a_reopen_puts_it_off(
    gorgias, work, rt, db, clock, shop, customer_and_order
):
    set_support(db, shop.id, survey_delay_minutes=60)
    gorgias(at="2026-11-22T11:55:00")
    work()
    sweep(rt)
    assert surveys(db) == []
    gorgias(status="open", at="2026-11-22T12:10:00")  # reopened before the survey went
    work()
    clock.advance(minutes=70)
    sweep(rt)
    assert surveys(db) == []
    gorgias(status="closed", at="2026-11-22T13:00:00")
    work()
    clock.advance(minutes=65)
    sweep(rt)
    assert len(surveys(db)) == 1


def test_spam_skip_tags_agent_started_and_recent_surveys_are_skipped_and_force_tags_win(
    gorgias, work, rt, db, clock, shop, customer_and_order
):
    set_support(db, shop.id, skip_tags="wholesale", force_tags="vip")
    gorgias(ticket_id=1, spam=True)
    gorgias(ticket_id=2, tags=[{"name": "Wholesale"}])
    gorgias(ticket_id=3, via="helpdesk")  # an agent opened it
    work()
    sweep(rt)
    assert surveys(db) == []
    gorgias(ticket_id=4)
    work()
    clock.advance(minutes=5)
    sweep(rt)
    assert [s.ticket_id for s in surveys(db)] != []
    gorgias(ticket_id=5)  # the same customer, surveyed minutes ago
    gorgias(ticket_id=6, tags=[{"name": "vip"}, {"name": "wholesale"}])
    work()
    clock.advance(minutes=5)
    sweep(rt)
    with Session(db) as session:
        surveyed = session.exec(
            select(Ticket.external_id).join(Survey, Survey.ticket_id == Ticket.id)
        ).all()
    assert sorted(surveyed) == ["4", "6"]


def test_one_reminder_only_when_the_shop_turns_it_on_and_not_after_an_answer(
    gorgias, work, rt, db, clock, shop, client, customer_and_order
):
    gorgias(ticket_id=1)
    work()
    sweep(rt)
    clock.advance(days=3)
    sweep(rt)
    assert len(survey_notifications(db)) == 1  # off by default
    set_support(db, shop.id, reminder_after_hours=24, survey_cooldown_days=0)
    gorgias(ticket_id=2, at="2026-11-25T11:00:00")
    gorgias(ticket_id=3, at="2026-11-25T11:00:00", customer={"email": "bo@example.com"})
    work()
    sweep(rt)
    assert len(survey_notifications(db)) == 3
    answered = surveys(db)[1]
    token = token_for(rt.settings.secret_key, answered)
    client.post(f"/s/{token}", data={"form": form_token(rt.settings.secret_key, token),
                                     "rating": "5"})  # fmt: skip
    clock.advance(hours=25)
    sweep(rt)
    clock.advance(hours=25)
    sweep(rt)
    reminders = [n for n in survey_notifications(db) if n.key.endswith(":reminder")]
    assert [n.recipient for n in reminders] == ["bo@example.com"]


# --- the page ----------------------------------------------------------------


@pytest.fixture
def sent_survey(gorgias, work, rt, db, customer_and_order):
    gorgias()
    work()
    sweep(rt)
    return survey_link(rt, db)


def test_opening_the_link_records_nothing_and_shows_the_clicked_rating(client, db, sent_survey):
    for _ in range(3):  # a mail scanner, a link preview, the customer
        page = client.get(f"{sent_survey}?r=4")
        assert page.status_code == 200
    assert 'value="4" checked' in page.text
    assert surveys(db)[0].rating is None


def test_one_tap_records_the_rating_then_a_comment_and_it_can_be_changed(
    client, db, rt, sent_survey
):
    token = sent_survey.removeprefix("/s/")
    form = form_token(rt.settings.secret_key, token)
    assert client.post(sent_survey, data={"form": form, "rating": "4"}).status_code == 200
    assert (
        client.post(sent_survey, data={"form": form, "comment": "Quick, thanks"}).status_code == 200
    )
    assert client.post(sent_survey, data={"form": form, "rating": "5"}).status_code == 200
    [survey] = surveys(db)
    assert (survey.rating, survey.comment, survey.answered_at) == (
        5,
        "Quick, thanks",
        rt.clock.now(),
    )


def test_forged_tokens_and_forms_from_another_survey_are_refused_and_change_nothing(
    client, db, rt, gorgias, work, sent_survey
):
    gorgias(ticket_id=2, customer={"email": "bo@example.com"})
    work()
    rt.clock.advance(minutes=5)
    sweep(rt)
    _, second = surveys(db)
    token = sent_survey.removeprefix("/s/")
    number, _, mac = token.partition(".")
    # The first survey's signature on the second survey's id: reuse on another ticket.
    assert client.get(f"/s/{second.id}.{mac}?r=1").status_code == 404
    assert client.post(f"/s/{second.id}.{mac}", data={"rating": "1"}).status_code == 404
    assert client.get(f"/s/{number}.{'A' * len(mac)}").status_code == 404
    assert client.get("/s/nonsense").status_code == 404
    other = token_for(rt.settings.secret_key, second)
    wrong_form = form_token(rt.settings.secret_key, token)
    assert client.post(f"/s/{other}", data={"form": wrong_form, "rating": "1"}).status_code == 403
    assert client.post(f"/s/{other}", data={"rating": "1"}).status_code == 403
    good = form_token(rt.settings.secret_key, other)
    for bad in ("0", "6", "", "4.5", "five"):
        assert client.post(f"/s/{other}", data={"form": good, "rating": bad}).status_code == 400
    assert [s.rating for s in surveys(db)] == [None, None]


def test_the_link_expires_after_fourteen_days_with_a_clear_page(client, db, rt, sent_survey):
    form = form_token(rt.settings.secret_key, sent_survey.removeprefix("/s/"))
    rt.clock.advance(days=14, minutes=1)
    page = client.get(f"{sent_survey}?r=5")
    language = surveys(db)[0].locale.split("-")[0]
    assert page.status_code == 410 and TEXT[language]["expired_title"] in page.text
    assert client.post(sent_survey, data={"form": form, "rating": "5"}).status_code == 410
    assert surveys(db)[0].rating is None


def test_the_page_speaks_the_customers_language(client, db, rt, sent_survey):
    with Session(db) as session:
        survey = session.exec(select(Survey)).one()
        survey.locale = "ru-RU"
        session.add(survey)
        session.commit()
    page = client.get(f"{sent_survey}?r=3")
    assert '<html lang="ru">' in page.text and TEXT["ru"]["title"] in page.text


# --- recovery ----------------------------------------------------------------


def test_a_rating_of_one_or_two_alerts_the_shops_support_address_with_the_comment(
    client, db, rt, shop, sent_survey
):
    set_support(db, shop.id, support_email="help@northwind.example")
    form = form_token(rt.settings.secret_key, sent_survey.removeprefix("/s/"))
    client.post(sent_survey, data={"form": form, "rating": "1"})
    client.post(sent_survey, data={"form": form, "comment": "Nobody answered"})
    alerts = survey_notifications(db, "survey_alert")
    assert [a.recipient for a in alerts] == ["help@northwind.example"] * 2
    assert json.loads(alerts[1].context)["comment"] == "Nobody answered"
    first = json.loads(alerts[0].context)
    assert (first["ticket_id"], first["customer_email"]) == ("42001", "ana@example.com")


def test_good_ratings_alert_nobody(client, db, rt, shop, sent_survey):
    set_support(db, shop.id, support_email="help@northwind.example")
    form = form_token(rt.settings.secret_key, sent_survey.removeprefix("/s/"))
    client.post(sent_survey, data={"form": form, "rating": "3"})
    assert survey_notifications(db, "survey_alert") == []


def test_a_close_wakes_the_sweep_at_the_due_time_and_nothing_is_queued_after(
    gorgias, work, rt, db, clock, shop, customer_and_order
):
    sweep(rt)
    assert sweep_jobs(db) == 0  # nothing closed yet: no shop job at all
    set_support(db, shop.id, survey_delay_minutes=30)
    gorgias(at="2026-11-22T11:50:00")
    work()
    with Session(db) as session:
        woken = session.exec(select(ShopJob).where(ShopJob.kind == "surveys.sweep")).one()
    assert woken.due_at == datetime(2026, 11, 22, 12, 20, tzinfo=UTC)
    clock.advance(minutes=20)
    jobs.run_shop_jobs(rt)  # no scheduler: the woken job alone sends it
    assert len(surveys(db)) == 1
    queued = sweep_jobs(db)
    clock.advance(minutes=5)
    sweep(rt)
    assert sweep_jobs(db) == queued  # the survey went: nothing waits


def sweep_jobs(db) -> int:
    with Session(db) as session:
        return len(session.exec(select(ShopJob).where(ShopJob.kind == "surveys.sweep")).all())


def test_a_ticket_whose_requester_is_mapped_after_it_closed_is_still_surveyed(
    client, rt, db, clock, shop, customer_and_order
):
    from test_helpdesk_webhooks import post_zendesk

    with Session(rt.engine) as session:
        issued = connect(session, rt.secrets, shop.id, "zendesk", "z" * 24, clock.now())
        session.commit()
    url = f"/webhooks/helpdesk/zendesk?key={issued.url_key}"
    for name in ("ticket_created", "status_changed_solved"):
        post_zendesk(client, url, load_fixture("zendesk", name), secret="z" * 24)
    worker.drain(rt)
    sweep(rt)
    assert surveys(db) == []  # nobody to ask yet
    post_zendesk(client, url, load_fixture("zendesk", "requester"), secret="z" * 24)
    worker.drain(rt)
    clock.advance(minutes=16)
    sweep(rt)
    [survey] = surveys(db)
    assert survey.sent_at == clock.now()


@pytest.fixture
def shopify(settings, db, clock):
    """Shopify's stand-in, and a runtime whose shop holds a token for it."""
    with serving("shpat_recovery") as standin:
        yield (
            standin,
            installed_runtime(
                settings,
                db,
                clock,
                standin,
                "shpat_recovery",
                {"write_discounts"},
                lifetime=timedelta(days=30),
            ),
        )


def recovery_jobs(db) -> list[ShopJob]:
    with Session(db) as session:
        return list(session.exec(select(ShopJob).where(ShopJob.kind == recovery.JOB)))


def test_a_low_rating_brings_an_apology_with_a_code_once_shopify_has_made_it(
    client, db, rt, shop, sent_survey, deliver, work, shopify
):
    standin, admin = shopify
    deliver("customers_email_marketing_consent/update", "customers_email_marketing_consent_update")
    work()
    set_support(db, shop.id, recovery_message=True)
    form = form_token(rt.settings.secret_key, sent_survey.removeprefix("/s/"))
    client.post(sent_survey, data={"form": form, "rating": "2"})
    assert len(recovery_jobs(db)) == 1  # queued by the rating, run by a worker

    standin.fail_next(3, 503)  # Shopify down: no code, so no message
    with pytest.raises(AdminError):
        recovery.run(admin, shop.id)
    assert survey_notifications(db, "recovery") == []

    recovery.run(admin, shop.id)  # the job's retry
    recovery.run(admin, shop.id)  # and once more: nothing twice
    with Session(db) as session:
        assert recovery.owed(session, shop.id, admin.clock.now()) == []  # Shopify not asked again
    [message] = survey_notifications(db, "recovery")
    facts = json.loads(message.context)
    made = standin.discounts[facts["discount_code"]]
    assert made["context"] == {"customers": {"add": ["gid://shopify/Customer/7001001"]}}
    assert (made["usageLimit"], made["customerGets"]["value"]) == (1, {"percentage": 0.15})
    assert (message.category, message.recipient) == ("marketing", "ana@example.com")


def test_no_apology_unless_the_shop_turns_it_on_or_the_rating_is_low(
    client, db, rt, shop, sent_survey
):
    form = form_token(rt.settings.secret_key, sent_survey.removeprefix("/s/"))
    client.post(sent_survey, data={"form": form, "rating": "1"})  # the shop has it off
    set_support(db, shop.id, recovery_message=True)
    client.post(sent_survey, data={"form": form, "rating": "3"})
    assert recovery_jobs(db) == []
