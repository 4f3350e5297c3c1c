"""Customers, their facts and their consent, newest first: each fact (the
snapshot as a whole, and each channel's consent) keeps the version with the
newest stamp the sender put on it, so duplicates and late deliveries change
nothing. A redacted customer's personal fields are never filled again."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, select

from app import birthday_dates
from app.changes import Change, CustomerFactChanged
from app.db import insert_ignoring_conflicts
from app.events import ConsentChange, CustomerSnapshot
from app.models import PII_CUSTOMER_COLUMNS, Customer, Shop
from app.order_state import is_newer

_CONSENT_FIELDS = (
    "email_consent",
    "email_consent_updated_at",
    "sms_consent",
    "sms_consent_updated_at",
)
PII_CUSTOMER_FIELDS = PII_CUSTOMER_COLUMNS
# Customer attributes that rules act on: a change to one is reported.
_RULE_FACTS = ("birth_date",)


def lock_customer(session: Session, shop_id: int, shopify_id: int) -> Customer:
    insert_ignoring_conflicts(
        session, Customer.__table__, {"shop_id": shop_id, "shopify_id": shopify_id}
    )
    return session.exec(
        select(Customer)
        .where(Customer.shop_id == shop_id, Customer.shopify_id == shopify_id)
        .with_for_update()
    ).one()


def apply_customer(
    session: Session, shop_id: int, snap: CustomerSnapshot, changes: list[Change], now: datetime
) -> Customer:
    customer = lock_customer(session, shop_id, snap.shopify_id)
    current = customer.snapshot_updated_at
    attributes = dict(snap.attributes)
    shop = session.get(Shop, shop_id)
    if snap.metafields is not None:
        # The shop's own birth-date metafield (facts.birth_date unless it
        # says otherwise); absent from metafields a payload carries: none.
        value = snap.metafields.get(f"{shop.birth_date_namespace}.{shop.birth_date_key}")
        attributes["birth_date"] = birth_date(value)
    scheduled = (customer.birth_date, customer.timezone)
    if is_newer(snap.updated_at, current) or (not snap.complete and snap.updated_at == current):
        for name, value in attributes.items():
            if name in _CONSENT_FIELDS or (
                customer.redacted_at is not None and name in PII_CUSTOMER_FIELDS
            ):
                continue
            if name in _RULE_FACTS and getattr(customer, name) != value:
                changes.append(
                    CustomerFactChanged(customer.id, name, getattr(customer, name), value)
                )
            setattr(customer, name, value)
        if snap.complete:
            customer.snapshot_updated_at = snap.updated_at
    # Consent carries its own stamp: a snapshot newer as a whole may still
    # hold an older consent than a consent webhook already told us.
    for channel in ("email", "sms"):
        if f"{channel}_consent" in snap.attributes:
            stamp = snap.attributes.get(f"{channel}_consent_updated_at") or snap.updated_at
            if is_newer(stamp, getattr(customer, f"{channel}_consent_updated_at")):
                setattr(customer, f"{channel}_consent", snap.attributes[f"{channel}_consent"])
                setattr(customer, f"{channel}_consent_updated_at", stamp)
    if (customer.birth_date, customer.timezone) != scheduled:
        birthday_dates.reschedule(customer, shop, now)
    session.flush()
    return customer


def birth_date(value: object) -> date | None:
    """A `date` metafield's value (YYYY-MM-DD). Anything else is no birth
    date: a merchant's typo must not stop the customer's other facts."""
    if not isinstance(value, str) or len(value.strip()) != 10:
        return None
    try:
        found = date.fromisoformat(value.strip())
    except ValueError:
        return None
    return found if 1900 <= found.year <= 2100 else None


def apply_consent(session: Session, shop_id: int, change: ConsentChange) -> None:
    customer = lock_customer(session, shop_id, change.customer_shopify_id)
    stamp_field = f"{change.channel}_consent_updated_at"
    if not is_newer(change.updated_at, getattr(customer, stamp_field)):
        return
    setattr(customer, f"{change.channel}_consent", change.state)
    setattr(customer, stamp_field, change.updated_at)
    address_field = "email" if change.channel == "email" else "phone"
    if change.address and customer.redacted_at is None and not getattr(customer, address_field):
        setattr(customer, address_field, change.address)
    session.flush()
