"""Birthday greetings: once a year, at the shop's `birthday_hour` on the
birthday in the customer's time zone (`app.birthday_dates`), a marketing
message (consent required) through the rules' shared step
(`app.rules.notify`), optionally with a single-use discount code.

The per-shop sweep (`birthdays.sweep` in `app.jobs.SHOP_JOBS`) reads only the
customers due, by the indexed `customers.next_birthday_at`, and moves each to
next year's greeting in the same transaction as its message; the outbox key
names the year, so a sweep run twice, or by two workers, greets once.

The discount code path: the code is created in Shopify *before* the message
is queued, and the message is queued in the same transaction that moves the
customer on. If Shopify refuses or is down, nothing is queued and the
customer stays due: the next sweep tries again, so the message waits and
never goes out with a code that does not exist. A greeting still not
possible when the customer's birthday is over is given up for the year
(logged). The code is derived from the shop's secret, the customer and the
year, so an attempt whose answer was lost is repeated with the same code,
which Shopify refuses as taken: that counts as made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import datetime, timedelta

from sqlmodel import Session, select

from app import rule_book
from app.birthday_dates import customer_zone, next_greeting, reschedule
from app.delay_checks import spec
from app.models import Customer, Shop
from app.rules import Audience, Rule, notify
from app.runtime import Runtime
from app.shop_tokens import NoAccessToken, with_admin
from integrations.shopify_admin import AdminError, DiscountCode, create_discount_code
from integrations.shopify_auth import OAuthError
from notifications import policy
from notifications.outbox import opted_out

log = logging.getLogger(__name__)

JOB = "birthdays.sweep"
BATCH = 200
# The shops the sweep concerns (a condition on `shops`, `ShopSchedule`):
# those with a greeting scheduled, found through the sweep's own index.
KNOWS_BIRTHDAYS = (
    select(Customer.id)
    .where(Customer.shop_id == Shop.id, Customer.next_birthday_at.is_not(None))
    .exists()
)


def sweep(rt: Runtime, shop_id: int) -> int:
    """Greet the shop's customers whose greeting is due; returns how many
    were queued. Batches commit one by one; a customer whose code could not
    be made stays due and is left for the next run."""
    greeted = 0
    waiting: set[int] = set()
    while True:
        now = rt.clock.now()
        with Session(rt.engine) as session:
            shop = session.get(Shop, shop_id)
            query = (
                select(Customer)
                .where(Customer.shop_id == shop_id, Customer.next_birthday_at <= now)
                .order_by(Customer.next_birthday_at, Customer.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
            if waiting:
                query = query.where(Customer.id.not_in(waiting))
            due = session.exec(query).all()
            if not due:
                return greeted
            for customer in due:
                outcome = _greet(session, rt, shop, customer, now)
                if outcome is None:
                    waiting.add(customer.id)
                greeted += bool(outcome)
            session.commit()


def _greet(
    session: Session, rt: Runtime, shop: Shop, customer: Customer, now: datetime
) -> bool | None:
    """Queue the customer's greeting and move them to next year: True if a
    message was queued, False if none was due any more; None if it must
    wait (its code could not be made yet)."""
    zone = customer_zone(customer, shop)
    due = customer.next_birthday_at
    on_the_day = now.astimezone(zone).date() == due.astimezone(zone).date()
    queued = False
    rule = rule_book.choose(rule_book.enabled_rules(session, shop.id, "birthday"), None)
    if on_the_day and customer.birth_date is not None and rule is not None:
        year = due.astimezone(zone).year
        facts: dict = {"shop_name": shop.name, "discount_code": None}
        if shop.birthday_discount and _can_be_told(session, shop, customer, spec(rule)):
            try:
                facts |= _make_code(session, rt, shop, customer, year, now)
            except (AdminError, NoAccessToken, OAuthError) as exc:
                log.warning("shop %s: birthday code for customer %s not made yet: %s",
                            shop.id, customer.id, type(exc).__name__)  # fmt: skip
                return None
        audience = Audience.of_customer(session, customer)
        queued = notify(session, spec(rule), audience, now, subject=f"birthday:{year}", facts=facts)
    elif customer.birth_date is not None and rule is not None:
        log.info("shop %s: birthday of customer %s passed unsent (sweep late)",
                 shop.id, customer.id)  # fmt: skip
    if customer.birth_date is None:
        customer.next_birthday_at = None
    else:
        customer.next_birthday_at = next_greeting(
            customer.birth_date, zone, shop.birthday_hour, max(due, now)
        )
    session.add(customer)
    return queued


def _can_be_told(session: Session, shop: Shop, customer: Customer, rule: Rule) -> bool:
    """Whether a marketing message can reach the customer on some channel:
    no code is made for someone who will not receive it."""
    audience = Audience.of_customer(session, customer)
    options = [
        policy.Reachability("email", audience.email, customer.email_consent,
                            opted_out(session, shop.id, "email", audience.email)),
        policy.Reachability("sms", audience.phone, customer.sms_consent,
                            opted_out(session, shop.id, "sms", audience.phone)),
    ]  # fmt: skip
    choice = policy.choose_channel(list(rule.channels), options, rule.category)
    return choice.channel is not None


def discount_code(secret: str, shop: Shop, customer: Customer, year: int) -> str:
    """The customer's birthday code for `year`."""
    return occasion_code(secret, shop, customer, str(year), "HBD-")


def occasion_code(secret: str, shop: Shop, customer: Customer, occasion: str, prefix: str) -> str:
    """The customer's code for one occasion: the same on every attempt (so a
    retry after a lost answer finds it made), and not guessable from the
    customer's id without the shop's secret."""
    message = f"{shop.id}:{customer.shopify_id}:{occasion}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return prefix + base64.b32encode(digest).decode()[:10]


def _make_code(
    session: Session, rt: Runtime, shop: Shop, customer: Customer, year: int, now: datetime
) -> dict:
    code = discount_code(rt.settings.secret_key, shop, customer, year)
    ends_at = now + timedelta(days=shop.birthday_discount_days)
    create_code(session, rt, shop, customer, code, f"Birthday {year}: {code}",
                shop.birthday_discount_percent, now, ends_at)  # fmt: skip
    return {
        "discount_code": code,
        "discount_percent": shop.birthday_discount_percent,
        "discount_ends_at": ends_at,
    }


def create_code(
    session: Session, rt: Runtime, shop: Shop, customer: Customer, code: str, title: str,
    percent: int, now: datetime, ends_at: datetime,
) -> None:  # fmt: skip
    """A single-use code for this customer only, in Shopify; raises when
    Shopify refuses or cannot be reached."""
    discount = DiscountCode(
        code=code,
        title=title,
        customer_gid=f"gid://shopify/Customer/{customer.shopify_id}",
        percentage=percent / 100,
        starts_at=now.isoformat(),
        ends_at=ends_at.isoformat(),
    )
    with_admin(session, rt, shop, lambda client: create_discount_code(client, discount))


def reschedule_shop(session: Session, shop: Shop, now: datetime) -> int:
    """Every greeting of the shop again (its hour or time zone changed);
    returns how many customers have one. The caller commits."""
    customers = session.exec(
        select(Customer).where(Customer.shop_id == shop.id, Customer.birth_date.is_not(None))
    ).all()
    for customer in customers:
        reschedule(customer, shop, now)
        session.add(customer)
    session.flush()
    return len(customers)
