"""Recovery after a low rating: when a customer rates a ticket 1 or 2 and
the shop has turned it on (`SupportSettings.recovery_message`), they get an
apology with a single-use discount code of their own, made through the same
Admin API path as the birthday codes (`discountCodeBasicCreate`).

Making the code calls Shopify, so it runs as a one-off shop job queued when
the rating is recorded, never inside the customer's request. If Shopify
refuses or is down, the job fails, is retried with backoff, and nothing is
sent: the message never goes out with a code that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, cast, exists, literal
from sqlmodel import Session, select

from app import birthdays
from app.models import Customer, Notification, Shop, Survey
from app.rules import Audience, Rule, notify
from app.runtime import Runtime
from app.tickets import support_settings
from notifications import policy

JOB = "surveys.recovery"
# An offer, so marketing: only a customer who agreed to hear from the shop gets it.
RECOVERY = Rule("recovery", policy.MARKETING, ("email", "sms"))
PERCENT, VALID_DAYS = 15, 30  # the code's terms
LOW_RATING = 2
WITHIN = timedelta(days=14)  # a rating can still change for as long


def subject(survey: Survey) -> str:
    return f"survey:{survey.id}"


def owed(session: Session, shop_id: int, now: datetime) -> list[Survey]:
    """Recent low ratings of known customers that have no recovery message yet."""
    told = exists().where(
        Notification.shop_id == Survey.shop_id,
        Notification.kind == RECOVERY.kind,
        Notification.customer_id == Survey.customer_id,
        Notification.key.endswith(literal(":survey:") + cast(Survey.id, String)),
    )
    return list(
        session.exec(
            select(Survey).where(
                Survey.shop_id == shop_id,
                Survey.rating <= LOW_RATING,
                Survey.customer_id.is_not(None),
                Survey.answered_at >= now - WITHIN,
                ~told,
            )
        ).all()
    )


def run(rt: Runtime, shop_id: int) -> None:
    """Make each owed customer's code, then queue their message (one
    transaction per customer: a failure leaves the others done)."""
    now = rt.clock.now()
    with Session(rt.engine) as session:
        if not support_settings(session, shop_id).recovery_message:
            return
        ids = [s.id for s in owed(session, shop_id, now)]
    for survey_id in ids:
        with Session(rt.engine) as session:
            survey = session.get(Survey, survey_id)
            shop, customer = session.get(Shop, shop_id), session.get(Customer, survey.customer_id)
            code = birthdays.occasion_code(
                rt.settings.secret_key, shop, customer, subject(survey), "SORRY-"
            )
            ends_at = now + timedelta(days=VALID_DAYS)
            birthdays.create_code(
                session, rt, shop, customer, code, f"Apology: {code}", PERCENT, now, ends_at
            )
            notify(session, RECOVERY, Audience.of_customer(session, customer), now,
                   subject=subject(survey), facts={
                       "shop_name": shop.name, "discount_code": code,
                       "discount_percent": PERCENT, "discount_ends_at": ends_at,
                   })  # fmt: skip
            session.commit()
