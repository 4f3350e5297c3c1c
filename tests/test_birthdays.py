"""Birthday greetings: the birth date from the shop's customer metafield,
the greeting once a year at the shop's hour on the birthday in the
customer's zone (29 February on 28 February in other years), marketing
consent required, the optional single-use discount code made in Shopify
before the message is queued, and a sweep run twice greeting once."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from shopify_standin import installed_runtime, serving
from sqlmodel import Session, select

from app import jobs
from app.birthday_dates import next_greeting
from app.install import RESUBSCRIBE
from app.models import Customer, InboxMessage, Notification, Rule, ShopJob
from support import load_fixture, set_shop

ANA = 7001001
TOKEN = "shpat_birthday_test"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- when ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "zone", "after", "expected"),
    [
        # 29 February: 28 February in a common year, the day itself in a leap year.
        (date(1992, 2, 29), "Europe/Madrid", utc(2027, 1, 1), utc(2027, 2, 28, 8)),
        (date(1992, 2, 29), "Europe/Madrid", utc(2028, 1, 1), utc(2028, 2, 29, 8)),
        (date(1992, 2, 29), "Europe/Madrid", utc(2027, 2, 28, 8), utc(2028, 2, 29, 8)),
        # 28 February stays 28 February, and 1 March stays 1 March, leap year or not.
        (date(1990, 3, 1), "Europe/Madrid", utc(2028, 2, 1), utc(2028, 3, 1, 8)),
        # Summer time: the same local hour is another UTC hour.
        (date(1990, 1, 15), "America/New_York", utc(2027, 1, 1), utc(2027, 1, 15, 14)),
        (date(1990, 3, 29), "America/New_York", utc(2027, 3, 1), utc(2027, 3, 29, 13)),
        # East of UTC the birthday starts the day before in UTC.
        (date(1985, 11, 23), "Pacific/Auckland", utc(2026, 11, 22), utc(2026, 11, 22, 20)),
        # Already greeted this year: next year.
        (date(1985, 11, 23), "Pacific/Auckland", utc(2026, 11, 22, 20), utc(2027, 11, 22, 20)),
        # The last day of the year, seen from a zone already in the next one.
        (date(1980, 12, 31), "Asia/Tokyo", utc(2026, 12, 31, 1), utc(2027, 12, 31, 0)),
    ],
)
def test_the_greeting_is_at_the_local_hour_on_the_birthday(birth, zone, after, expected):
    assert next_greeting(birth, ZoneInfo(zone), 9, after) == expected


def test_an_hour_the_clocks_skip_is_read_as_they_read_it_after_the_jump():
    # New York skipped 02:00-03:00 on 14 March 2027: "2:00" is 03:00 EDT.
    moment = next_greeting(date(1990, 3, 14), ZoneInfo("America/New_York"), 2, utc(2027, 3, 1))
    assert moment == utc(2027, 3, 14, 7)


# --- through the webhooks and the sweep -------------------------------------------------------


def with_birth_date(value: str, namespace: str = "facts", key: str = "birth_date") -> dict:
    customer = load_fixture("shopify", "customers_update")
    customer["metafields"] = [{"id": 7101001, "namespace": namespace, "key": key,
                               "value": value, "type": "date"}]  # fmt: skip
    return customer


def ana(db) -> Customer:
    with Session(db) as session:
        return session.exec(select(Customer).where(Customer.shopify_id == ANA)).one()


def birthday_messages(db) -> list[Notification]:
    with Session(db) as session:
        return list(session.exec(select(Notification).where(Notification.kind == "birthday")))


def sweep(rt) -> None:
    """What the scheduler and a worker do: queue the due shop jobs, run them."""
    jobs.enqueue_shop_jobs(rt)
    jobs.run_shop_jobs(rt)


@pytest.fixture
def consenting_ana(shop, db, deliver, work):
    """Ana, born on 23 November, subscribed to email, in a Madrid shop."""
    set_shop(db, shop.id, timezone="Europe/Madrid")
    deliver("customers/update", with_birth_date("1990-11-23"))
    deliver("customers_email_marketing_consent/update", "customers_email_marketing_consent_update")
    work()
    return ana(db)


def test_a_birth_date_in_the_shops_metafield_schedules_the_greeting(consenting_ana):
    assert consenting_ana.birth_date == date(1990, 11, 23)
    assert consenting_ana.next_birthday_at == utc(2026, 11, 23, 8)  # 09:00 in Madrid


def test_another_metafield_is_not_a_birth_date_and_a_payload_without_any_keeps_it(
    shop, db, deliver, work
):
    deliver("customers/update", with_birth_date("1990-11-23", key="anniversary"))
    work()
    assert ana(db).birth_date is None
    set_shop(db, shop.id, birth_date_key="anniversary")
    later = with_birth_date("1990-11-23", key="anniversary") | {
        "updated_at": "2026-11-23T10:00:00+01:00"}  # fmt: skip
    deliver("customers/update", later)
    no_metafields = load_fixture("shopify", "customers_update") | {
        "updated_at": "2026-11-23T11:00:00+01:00"}  # fmt: skip
    deliver("customers/update", no_metafields)  # a subscription without the namespace
    work()
    assert ana(db).birth_date == date(1990, 11, 23)


def test_the_sweep_greets_on_the_birthday_at_the_hour_and_twice_is_once(
    rt, consenting_ana, db, clock
):
    clock.current = utc(2026, 11, 23, 7, 59)
    sweep(rt)
    assert birthday_messages(db) == []

    clock.current = utc(2026, 11, 23, 8, 0)
    sweep(rt)
    clock.advance(minutes=15)
    sweep(rt)

    [message] = birthday_messages(db)
    assert (message.category, message.channel, message.status) == ("marketing", "email", "queued")
    assert message.key == f"customer:{ANA}:birthday:birthday:2026"
    assert ana(db).next_birthday_at == utc(2027, 11, 23, 8)


def test_the_same_greeting_due_again_is_never_queued_twice(rt, consenting_ana, db, clock):
    clock.current = utc(2026, 11, 23, 8, 0)
    sweep(rt)
    with Session(db) as session:  # a second scheduler's stale copy of the row
        customer = session.get(Customer, consenting_ana.id)
        customer.next_birthday_at = utc(2026, 11, 23, 8)
        session.add(customer)
        session.commit()
    sweep(rt)
    assert len(birthday_messages(db)) == 1


def test_a_customer_without_marketing_consent_is_not_greeted(rt, shop, db, deliver, work, clock):
    set_shop(db, shop.id, timezone="Europe/Madrid")
    deliver("customers/update", with_birth_date("1990-11-23"))
    work()
    clock.current = utc(2026, 11, 23, 8, 0)
    sweep(rt)

    [message] = birthday_messages(db)
    assert message.status == "suppressed"
    assert "no marketing consent" in message.status_detail


def test_a_birth_date_learned_on_the_birthday_past_its_hour_is_greeted_that_day(
    rt, shop, db, deliver, work, clock
):
    set_shop(db, shop.id, timezone="Europe/Madrid")
    clock.current = utc(2026, 11, 23, 15, 0)  # 16:00 in Madrid, on the day
    deliver("customers/update", with_birth_date("1990-11-23"),
            triggered_at="2026-11-23T14:59:59Z")  # fmt: skip
    deliver("customers_email_marketing_consent/update", "customers_email_marketing_consent_update",
            triggered_at="2026-11-23T14:59:59Z")  # fmt: skip
    work()
    sweep(rt)

    assert [m.status for m in birthday_messages(db)] == ["queued"]
    assert ana(db).next_birthday_at == utc(2027, 11, 23, 8)


def test_a_sweep_that_runs_after_the_birthday_is_over_sends_nothing_and_waits_a_year(
    rt, consenting_ana, db, clock
):
    clock.current = utc(2026, 11, 24, 9, 0)  # the scheduler was down all of the 23rd
    sweep(rt)
    assert birthday_messages(db) == []
    assert ana(db).next_birthday_at == utc(2027, 11, 23, 8)


def test_a_new_shop_hour_or_time_zone_moves_every_greeting(consenting_ana, client, shop, db):
    answer = client.patch("/api/v1/settings/birthdays", json={"birthday_hour": 18},
                          headers=shop.auth)  # fmt: skip
    assert answer.status_code == 200 and answer.json["birthday_hour"] == 18
    assert ana(db).next_birthday_at == utc(2026, 11, 23, 17)

    client.patch("/api/v1/settings/notifications", json={"timezone": "America/New_York"},
                 headers=shop.auth)  # fmt: skip
    assert ana(db).next_birthday_at == utc(2026, 11, 23, 23)


def test_another_birth_date_namespace_queues_a_new_subscription(client, shop, db):
    answer = client.patch("/api/v1/settings/birthdays",
                          json={"birth_date_namespace": "custom"}, headers=shop.auth)  # fmt: skip
    assert answer.json["birth_date_namespace"] == "custom"
    with Session(db) as session:
        assert [job.kind for job in session.exec(select(ShopJob))] == [RESUBSCRIBE]


@pytest.mark.parametrize(
    "change",
    [{"birth_date_namespace": "no spaces"}, {"birth_date_key": "x"}, {"birthday_hour": 24},
     {"birthday_hour": "9"}, {"birthday_discount_percent": 0}, {"birthday_discount": "yes"},
     {"birth_date_namespace": None}, {"surprise": 1}],
)  # fmt: skip
def test_bad_birthday_settings_are_refused_and_change_nothing(client, shop, change):
    before = client.get("/api/v1/settings/birthdays", headers=shop.auth).json
    answer = client.patch("/api/v1/settings/birthdays", json=change, headers=shop.auth)
    assert answer.status_code == 400
    assert client.get("/api/v1/settings/birthdays", headers=shop.auth).json == before


# --- the discount code ------------------------------------------------------------------------


@pytest.fixture
def standin():
    with serving(TOKEN) as standin:
        yield standin


@pytest.fixture
def coded(settings, db, clock, standin, shop, deliver, work):
    """The shop holds a token for the stand-in and gives 15% codes; Ana
    consents and is born on 23 November."""
    rt = installed_runtime(settings, db, clock, standin, TOKEN, {"write_discounts"},
                           lifetime=timedelta(days=30))  # fmt: skip
    set_shop(db, shop.id, timezone="Europe/Madrid", birthday_discount=True,
             birthday_discount_percent=15, birthday_discount_days=30)  # fmt: skip
    deliver("customers/update", with_birth_date("1990-11-23"))
    deliver("customers_email_marketing_consent/update", "customers_email_marketing_consent_update")
    work()
    clock.current = utc(2026, 11, 23, 8, 0)
    return rt


def test_the_greeting_carries_a_single_use_code_for_that_customer_only(coded, standin, db):
    jobs.sweep_birthdays(coded, ana(db).shop_id)

    [message] = birthday_messages(db)
    code = json.loads(message.context)["discount_code"]
    made = standin.discounts[code]
    assert made["context"] == {"customers": {"add": [f"gid://shopify/Customer/{ANA}"]}}
    assert (made["usageLimit"], made["appliesOncePerCustomer"]) == (1, True)
    assert made["customerGets"]["value"] == {"percentage": 0.15}
    assert made["endsAt"] == utc(2026, 12, 23, 8).isoformat()


@pytest.mark.parametrize("trouble", ["refused", "down"])
def test_when_shopify_cannot_make_the_code_the_greeting_waits_and_then_goes_with_it(
    coded, standin, db, clock, trouble
):
    if trouble == "refused":
        standin.refuse_discounts = 1
    else:
        standin.fail_next(3, 503)  # every attempt of one call
    jobs.sweep_birthdays(coded, ana(db).shop_id)
    assert birthday_messages(db) == []
    assert ana(db).next_birthday_at == utc(2026, 11, 23, 8)  # still due

    clock.advance(minutes=15)
    jobs.sweep_birthdays(coded, ana(db).shop_id)

    [message] = birthday_messages(db)
    assert json.loads(message.context)["discount_code"] in standin.discounts


def test_a_code_made_by_an_attempt_whose_answer_was_lost_is_not_made_twice(coded, standin, db):
    from app.birthdays import discount_code
    from app.models import Shop

    customer = ana(db)
    with Session(db) as session:
        shop = session.get(Shop, customer.shop_id)
    code = discount_code(coded.settings.secret_key, shop, customer, 2026)
    standin.discounts[code] = {"code": code}  # Shopify made it; we never heard

    jobs.sweep_birthdays(coded, ana(db).shop_id)

    [message] = birthday_messages(db)
    assert json.loads(message.context)["discount_code"] == code


@pytest.mark.parametrize(
    ("metafields", "reason"),
    [
        ("1990-11-23", "customer.metafields must be a list, not a string"),
        ([{"namespace": "facts", "key": "birth_date", "value": {"d": 1}}],
         "customer.metafields[0].value must be a string, not an object"),
    ],
)  # fmt: skip
def test_unreadable_metafields_are_dead_lettered_with_their_reason(
    shop, db, deliver, work, metafields, reason
):
    payload = load_fixture("shopify", "customers_update") | {"metafields": metafields}
    assert deliver("customers/update", payload).status_code == 200
    work()
    with Session(db) as session:
        [message] = session.exec(select(InboxMessage)).all()
    assert (message.status, message.last_error) == ("dead", f"PayloadError: {reason}")


def test_a_new_namespace_reaches_the_shops_customer_subscriptions(coded, standin, db, shop):
    from app.factory import create_app

    coded.settings = dataclasses.replace(coded.settings, public_url="https://careloop.example.com")
    api = create_app(coded).test_client()
    answer = api.patch("/api/v1/settings/birthdays", json={"birth_date_namespace": "custom"},
                       headers=shop.auth)  # fmt: skip
    assert answer.status_code == 200

    jobs.run_shop_jobs(coded)  # the queued re-subscription

    by_topic = {s["topic"]: s for s in standin.subscriptions.values()}
    assert by_topic["CUSTOMERS_UPDATE"]["metafieldNamespaces"] == ["custom"]
    assert by_topic["CUSTOMERS_CREATE"]["metafieldNamespaces"] == ["custom"]
    assert by_topic["ORDERS_PAID"]["metafieldNamespaces"] == []


def test_a_shop_that_switches_its_birthday_rule_off_greets_nobody(rt, consenting_ana, db, clock):
    """The greeting follows the shop's birthday rule (`/app/rules`): off, no message."""
    with Session(db) as session:
        rule = session.exec(
            select(Rule).where(Rule.shop_id == consenting_ana.shop_id, Rule.trigger == "birthday")
        ).one()
        assert (rule.enabled, rule.category) == (True, "marketing")  # a default rule
        rule.enabled = False
        session.commit()
    clock.current = utc(2026, 11, 23, 8, 0)
    sweep(rt)
    assert birthday_messages(db) == []
    assert ana(db).next_birthday_at == utc(2027, 11, 23, 8)  # next year, if switched back on
