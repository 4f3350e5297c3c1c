"""Tables. Every tenant table carries `shop_id`, and every query filters by it,
so that one shop never sees another's rows and the data can later be sharded by
shop (Citus distributes on that column).

Timestamps are aware UTC datetimes (see `app.clock`). Shopify ids are 64-bit, so they
are BIGINT on PostgreSQL.

Every table declares its personal data (`__privacy__`): which columns hold a
customer's personal data and how customers/redact erases each, and how
shop/redact erases the shop's rows. tests/test_privacy.py fails for a table
without a declaration and checks every declared column after both erasures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from sqlalchemy import BigInteger, Column, Index, Numeric, Text, UniqueConstraint, false, true
from sqlmodel import Field, SQLModel


class Erasure(StrEnum):
    """How a personal column is erased when its customer asks (customers/redact)."""

    NULL = "null"  # set to NULL; the row stays, so counts and cohorts still add up
    EMPTY = "empty"  # set to the column's empty value ("" or "{}"): it cannot be NULL
    DELETE_ROW = "delete_row"  # the whole row goes: it exists only for that person


@dataclass(frozen=True)
class Privacy:
    """A table's personal data. `customer` maps each column holding a
    customer's personal data to its erasure (empty: the table holds none).
    shop/redact deletes every row of the shop (`shop_rows`), in every table:
    after an uninstall, Shopify asks for everything to go (`app.privacy.erase_shop`)."""

    customer: dict[str, Erasure] = field(default_factory=dict)
    # "transient": rows that belong to no installed shop yet and expire on
    # their own within minutes (an install in flight, keyed by its domain).
    shop_rows: Literal["delete", "transient"] = "delete"


def _bigint(nullable: bool = False, index: bool = False) -> Column:
    return Column(BigInteger, nullable=nullable, index=index)


class ApiToken(SQLModel, table=True):
    """One of a shop's CareLoop API tokens. Each works until it is revoked, so
    issuing another (the demo, a second person) never signs anyone out."""

    __tablename__ = "api_tokens"
    __privacy__ = Privacy()  # hashes of the shop's own tokens

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    # SHA-256 of the token: the token itself is shown once.
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime
    revoked_at: datetime | None = None


class Shop(SQLModel, table=True):
    __tablename__ = "shops"
    __privacy__ = Privacy()  # the merchant's own settings; the row goes with shop/redact

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=255, unique=True)
    name: str = Field(default="", max_length=255)
    timezone: str = Field(default="UTC", max_length=64)
    locale: str = Field(default="en", max_length=16)
    currency: str = Field(default="USD", max_length=3)
    installed_at: datetime
    uninstalled_at: datetime | None = None
    # Shopify's offline access token for the Admin API, and its refresh token
    # (Shopify's expiring offline tokens last an hour): Fernet-encrypted.
    access_token_encrypted: str | None = Field(default=None, sa_column=Column(Text))
    access_token_expires_at: datetime | None = None
    refresh_token_encrypted: str | None = Field(default=None, sa_column=Column(Text))
    refresh_token_expires_at: datetime | None = None
    scopes: str | None = Field(default=None, max_length=1000)
    # Notifications: who they come from, and when and how often they may go.
    email_from: str | None = Field(default=None, max_length=320)
    sms_from: str | None = Field(default=None, max_length=34)  # E.164 or a messaging service
    quiet_hours_start: str = Field(  # in the customer's local time
        default="21:00", max_length=5, sa_column_kwargs={"server_default": "21:00"}
    )
    quiet_hours_end: str = Field(
        default="08:00", max_length=5, sa_column_kwargs={"server_default": "08:00"}
    )
    daily_message_cap: int = Field(  # per customer, every channel, rolling 24 hours
        default=4, sa_column_kwargs={"server_default": "4"}
    )
    # Retention: a customer without an order for this many days has churned.
    churn_window_days: int = Field(default=180, sa_column_kwargs={"server_default": "180"})
    # Sign-in links issued up to this moment no longer work (app.sign_in_links).
    sign_in_links_revoked_at: datetime | None = None
    # Birthdays (`app.birthdays`): the customer metafield holding the birth
    # date, the local hour of the greeting, and the optional discount code.
    birth_date_namespace: str = Field(
        default="facts", max_length=255, sa_column_kwargs={"server_default": "facts"}
    )
    birth_date_key: str = Field(
        default="birth_date", max_length=64, sa_column_kwargs={"server_default": "birth_date"}
    )
    birthday_hour: int = Field(default=9, sa_column_kwargs={"server_default": "9"})
    birthday_discount: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    birthday_discount_percent: int = Field(default=10, sa_column_kwargs={"server_default": "10"})
    birthday_discount_days: int = Field(default=30, sa_column_kwargs={"server_default": "30"})
    # Delay detection (`app.delays`): what the shop promises when Shopify
    # does not say, and how long silence may last before it is news.
    country: str = Field(  # ISO 3166 alpha-2: "home" for the stalled threshold
        default="US", max_length=2, sa_column_kwargs={"server_default": "US"}
    )
    processing_days: int = Field(default=2, sa_column_kwargs={"server_default": "2"})
    transit_days: int = Field(default=5, sa_column_kwargs={"server_default": "5"})
    # JSON object {"CA": 7, ...}: transit business days by destination country.
    transit_days_by_country: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, server_default="{}")
    )
    stalled_days_home: int = Field(default=3, sa_column_kwargs={"server_default": "3"})
    stalled_days_abroad: int = Field(default=5, sa_column_kwargs={"server_default": "5"})
    not_shipped_grace_hours: int = Field(default=72, sa_column_kwargs={"server_default": "72"})
    tracking_problem_hours: int = Field(default=72, sa_column_kwargs={"server_default": "72"})
    # Comma-separated ISO dates the shop does not ship (its local calendar).
    holidays: str | None = Field(default=None, sa_column=Column(Text))


# A customer's personal columns, all erased to NULL by customers/redact.
PII_CUSTOMER_COLUMNS = (
    "email", "phone", "first_name", "last_name", "birth_date", "next_birthday_at",
)  # fmt: skip


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __privacy__ = Privacy(dict.fromkeys(PII_CUSTOMER_COLUMNS, Erasure.NULL))
    __table_args__ = (
        UniqueConstraint("shop_id", "shopify_id"),
        # The birthday sweep: who is due, read in due order.
        Index("ix_customers_shop_next_birthday", "shop_id", "next_birthday_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    shopify_id: int = Field(sa_column=_bigint())
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    locale: str | None = Field(default=None, max_length=16)
    timezone: str | None = Field(default=None, max_length=64)
    # Marketing consent as Shopify reports it, lower case (subscribed,
    # not_subscribed, unsubscribed, pending, redacted, invalid), each with the time Shopify says
    # it changed, so that an older consent event never overwrites a newer one.
    email_consent: str | None = Field(default=None, max_length=32)
    email_consent_updated_at: datetime | None = None
    sms_consent: str | None = Field(default=None, max_length=32)
    sms_consent_updated_at: datetime | None = None
    shopify_created_at: datetime | None = None
    # The standard birthday metafield (facts.birth_date), for birthday rules.
    birth_date: date | None = None
    # When the next birthday greeting is due (UTC; `app.birthdays`), kept
    # with the birth date and time zone; None without a birth date.
    next_birthday_at: datetime | None = None
    snapshot_updated_at: datetime | None = None
    redacted_at: datetime | None = None


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __privacy__ = Privacy({"email": Erasure.NULL, "phone": Erasure.NULL})
    __table_args__ = (
        UniqueConstraint("shop_id", "shopify_id"),
        Index("ix_orders_shop_state", "shop_id", "state"),
        # The rules' sweep: what is due for a shop, read in due order.
        Index("ix_orders_shop_next_check", "shop_id", "next_check_at"),
        # The support report's contact rate: the orders placed in a period.
        Index("ix_orders_shop_placed", "shop_id", "shopify_created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    shopify_id: int = Field(sa_column=_bigint())
    name: str | None = Field(default=None, max_length=64)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    currency: str | None = Field(default=None, max_length=3)
    total_price: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    financial_status: str | None = Field(default=None, max_length=32)
    fulfillment_status: str | None = Field(default=None, max_length=32)
    cancelled_at: datetime | None = None
    shopify_created_at: datetime | None = None
    # `updated_at` of the newest order snapshot applied; None while we know the
    # order only from a fulfillment that arrived first.
    snapshot_updated_at: datetime | None = None
    state: str = Field(max_length=32)
    state_changed_at: datetime
    created_at: datetime
    redacted_at: datetime | None = None
    # Shopify's `test`: placed with a test gateway; never counted in retention.
    test: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # The promise, from Shopify's fulfillment orders (`FulfillmentOrder`):
    # the earliest ship-by of the open ones, the delivery window promised at
    # checkout, and whether the warehouse holds any (with the hold's reason).
    fulfill_by: datetime | None = None
    delivery_min_at: datetime | None = None
    delivery_max_at: datetime | None = None
    on_hold: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    hold_reason: str | None = Field(default=None, max_length=64)
    hold_changed_at: datetime | None = None
    # What rule conditions match on, from the order payload.
    shipping_country: str | None = Field(default=None, max_length=2)
    shipping_method: str | None = Field(default=None, max_length=255)
    tags: str | None = Field(default=None, sa_column=Column(Text))  # Shopify's comma list
    # When a time-driven rule may next have something to say about this
    # order (`app.sweep`); None when nothing can become due without news.
    next_check_at: datetime | None = None


class FulfillmentOrder(SQLModel, table=True):
    """One of an order's Shopify fulfillment orders, as last reported: what
    the order's promise and hold columns are computed from. Also how a
    `fulfillment_orders/*` webhook, which names no order, finds its order."""

    __tablename__ = "fulfillment_orders"
    __privacy__ = Privacy()  # deadlines and a hold reason code
    __table_args__ = (
        UniqueConstraint("shop_id", "shopify_id"),
        Index("ix_fulfillment_orders_order", "shop_id", "order_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    shopify_id: int = Field(sa_column=_bigint())
    order_id: int = Field(foreign_key="orders.id")
    status: str = Field(max_length=32)
    hold_reason: str | None = Field(default=None, max_length=64)
    fulfill_by: datetime | None = None
    fulfill_at: datetime | None = None
    delivery_min_at: datetime | None = None
    delivery_max_at: datetime | None = None
    # GraphQL `updatedAt`, or a webhook's trigger time: older never overwrites.
    source_updated_at: datetime
    created_at: datetime


class Shipment(SQLModel, table=True):
    """A parcel, from whichever source reports it (Shopify fulfillments now,
    fulfillment providers and trackers later)."""

    __tablename__ = "shipments"
    __privacy__ = Privacy()
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "external_id"),
        # Events are matched to orders by tracking number; one parcel may be
        # reported by several sources under the same number.
        Index("ix_shipments_shop_tracking", "shop_id", "tracking_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    source: str = Field(max_length=32)
    external_id: str = Field(max_length=64)
    status: str = Field(max_length=32)
    # Why, when the source says (e.g. ShipBob "OutOfStock: No Stock On Hand").
    status_detail: str | None = Field(default=None, sa_column=Column(Text))
    carrier: str | None = Field(default=None, max_length=128)
    tracking_number: str | None = Field(default=None, max_length=128)
    tracking_url: str | None = Field(default=None, sa_column=Column(Text))
    # The facts a delay is made of.
    promised_ship_at: datetime | None = None
    shipped_at: datetime | None = None
    estimated_delivery_at: datetime | None = None
    # The first estimate we knew (the one the "shipped" message told): kept,
    # so that a revision can be compared with it and reports with delivery.
    first_estimated_delivery_at: datetime | None = None
    delivered_at: datetime | None = None
    last_scan_at: datetime | None = None
    # When the source says this version of the facts was true: an event with
    # an older stamp never overwrites them.
    source_updated_at: datetime
    created_at: datetime


class OrderEvent(SQLModel, table=True):
    """The order's timeline: state transitions and shipment status changes."""

    __tablename__ = "order_events"
    __privacy__ = Privacy()
    __table_args__ = (Index("ix_order_events_order", "shop_id", "order_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    order_id: int = Field(foreign_key="orders.id")
    kind: str = Field(max_length=16)  # "state", "shipment" or "eta" (a revised delivery date)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    shipment_id: int | None = Field(default=None, foreign_key="shipments.id")
    cause: str = Field(max_length=128)  # e.g. "shopify:orders/paid"
    inbox_id: int | None = None
    occurred_at: datetime  # when the source says it happened
    recorded_at: datetime


class InboxMessage(SQLModel, table=True):
    """A webhook delivery, stored before we answer 200 and processed afterwards.

    Deduplicated by the sender's delivery id and, where the sender has one, by
    topic + event id (Shopify may deliver one event under several webhook ids).
    """

    __tablename__ = "inbox"
    __privacy__ = Privacy(
        {"body": Erasure.EMPTY}
    )  # the raw webhook, found by customer_ref/order_ref
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "delivery_id", name="uq_inbox_delivery"),
        UniqueConstraint("shop_id", "source", "topic", "event_id", name="uq_inbox_event"),
        Index("ix_inbox_due", "status", "next_attempt_at"),
        Index("ix_inbox_shop_status", "shop_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    source: str = Field(max_length=32)
    topic: str = Field(max_length=128)
    delivery_id: str = Field(max_length=128)
    event_id: str | None = Field(default=None, max_length=128)
    api_version: str | None = Field(default=None, max_length=32)
    triggered_at: datetime | None = None
    received_at: datetime
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)  # pending, done, dead, parked
    attempts: int = 0
    next_attempt_at: datetime
    processed_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    # Set when processed, so that a redaction can find the raw bodies that
    # carry a customer's personal data.
    customer_ref: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    order_ref: int | None = Field(default=None, sa_column=_bigint(nullable=True))


class DataRequest(SQLModel, table=True):
    """A customer's request for their data (Shopify's customers/data_request)."""

    __tablename__ = "data_requests"
    __privacy__ = Privacy({"export": Erasure.DELETE_ROW})  # a copy of what we hold on them

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    shopify_request_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    customer_shopify_id: int | None = Field(default=None, sa_column=_bigint(nullable=True))
    requested_at: datetime
    export: str = Field(sa_column=Column(Text, nullable=False))


class ParkedReference(SQLModel, table=True):
    """What a parked inbox message waits for: an event about an order we do
    not know yet, by one of the references it could be matched on."""

    __tablename__ = "parked_references"
    __privacy__ = Privacy()
    __table_args__ = (Index("ix_parked_references_ref", "shop_id", "reference"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    inbox_id: int = Field(foreign_key="inbox.id", index=True)
    reference: str = Field(max_length=160)  # e.g. "order:5001001", "name:1001", "tracking:1Z.."


class ProviderConnection(SQLModel, table=True):
    """A shop's connection to an outside provider of some kind (fulfillment
    and tracking, helpdesk: `app.providers`), and how its webhooks are
    authenticated: a URL key (only its SHA-256 is kept) that says which shop
    a delivery is for, and the signing secret, encrypted."""

    __tablename__ = "provider_connections"
    __privacy__ = Privacy()
    __table_args__ = (UniqueConstraint("shop_id", "provider"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    kind: str = Field(max_length=16)  # "fulfillment" or "helpdesk"
    provider: str = Field(max_length=32)  # names are unique across kinds
    url_key_hash: str = Field(max_length=64, unique=True)
    secret_encrypted: str | None = Field(default=None, sa_column=Column(Text))
    secret_hint: str | None = Field(default=None, max_length=8)
    created_at: datetime
    updated_at: datetime


class Notification(SQLModel, table=True):
    """One message to one customer: the outbox row.

    Written in the same transaction as the change that caused it; `key` (the
    recipient, the kind and what it is about) is unique per shop, so the same
    alert is never queued twice whatever retries happen upstream.
    """

    __tablename__ = "notifications"
    __privacy__ = Privacy({"recipient": Erasure.EMPTY, "context": Erasure.EMPTY})
    __table_args__ = (
        UniqueConstraint("shop_id", "key", name="uq_notifications_key"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_shop_order", "shop_id", "order_id"),
        Index("ix_notifications_customer_sent", "shop_id", "customer_id", "sent_at"),
        Index("ix_notifications_provider_id", "provider_message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    key: str = Field(max_length=255)  # e.g. "customer:7001001:shipping:order:5001001"
    kind: str = Field(max_length=32)  # shipping, delay, birthday, survey
    category: str = Field(max_length=16)  # transactional or marketing
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    order_id: int | None = Field(default=None, foreign_key="orders.id")
    channel: str = Field(max_length=8)  # email or sms
    recipient: str = Field(max_length=320)  # email address or E.164 number
    locale: str = Field(max_length=16)
    context: str = Field(sa_column=Column(Text, nullable=False))  # JSON facts to render
    status: str = Field(max_length=16)
    status_detail: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    next_attempt_at: datetime
    lease_until: datetime | None = None  # while `sending`: reclaimed after this
    provider: str | None = Field(default=None, max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=128)
    segments: int | None = None  # SMS parts billed
    # The rule that queued it (`rules` row; no foreign key: a deleted rule's
    # messages stay on record), and whether it keeps the quiet hours.
    rule_id: int | None = None
    quiet_hours: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    created_at: datetime
    sent_at: datetime | None = None
    updated_at: datetime


class NotificationEvent(SQLModel, table=True):
    """Every status change of a notification, for the record."""

    __tablename__ = "notification_events"
    __privacy__ = Privacy()
    __table_args__ = (Index("ix_notification_events_notification", "shop_id", "notification_id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    notification_id: int = Field(foreign_key="notifications.id")
    status: str = Field(max_length=16)
    detail: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime


class ChannelOptOut(SQLModel, table=True):
    """An address that said no on a channel (STOP, an unsubscribe link, a
    hard bounce, a complaint): never messaged on that channel again."""

    __tablename__ = "channel_opt_outs"
    __privacy__ = Privacy({"address": Erasure.DELETE_ROW})
    __table_args__ = (UniqueConstraint("shop_id", "channel", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    channel: str = Field(max_length=8)
    address: str = Field(max_length=320)
    reason: str = Field(max_length=64)
    created_at: datetime


class TemplateOverride(SQLModel, table=True):
    """A shop's own words for a kind of message, validated when saved and
    rendered in Jinja2's sandbox."""

    __tablename__ = "template_overrides"
    __privacy__ = Privacy()
    __table_args__ = (UniqueConstraint("shop_id", "kind", "channel", "locale"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    kind: str = Field(max_length=32)
    channel: str = Field(max_length=8)
    locale: str = Field(max_length=16)
    subject: str | None = Field(default=None, max_length=255)
    html: str | None = Field(default=None, sa_column=Column(Text))
    text: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime


class HistoryImport(SQLModel, table=True):
    """Importing a shop's customers and orders from before the install, with
    Shopify bulk operations (one query per step). Resumable: `lines_applied`
    of the current step's result file are committed with the rows they made."""

    __tablename__ = "history_imports"
    __privacy__ = Privacy()
    __table_args__ = (Index("ix_history_imports_shop", "shop_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    step: int = 0  # index into integrations.shopify_bulk.BULK_QUERIES
    bulk_operation_id: str | None = Field(default=None, max_length=128)
    status: str = Field(max_length=16)  # running, ready, done, failed
    url: str | None = Field(default=None, sa_column=Column(Text))
    objects_total: int | None = None
    lines_applied: int = 0
    lines_skipped: int = 0  # lines we could not read: skipped, logged, counted
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class ShopJob(SQLModel, table=True):
    """A unit of scheduled work for one shop (`app.shop_jobs`): enqueued by
    the scheduler once per slot, run by whichever worker claims it, so that
    one slow shop delays no other and more workers mean more throughput."""

    __tablename__ = "shop_jobs"
    __privacy__ = Privacy()  # what is due for the shop, and its errors
    __table_args__ = (
        UniqueConstraint("shop_id", "kind", "slot", name="uq_shop_jobs_slot"),
        Index("ix_shop_jobs_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    kind: str = Field(max_length=64)  # e.g. "orders.reconcile"
    slot: str = Field(max_length=32)  # which run this is, e.g. "2026-12-04T15:30" or "2026-12-04"
    status: str = Field(max_length=16)  # queued, running, done, dead
    attempts: int = 0
    due_at: datetime
    lease_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime
    finished_at: datetime | None = None


class OAuthState(SQLModel, table=True):
    """An install begun at /auth/install and not finished: the `state` nonce
    sent to Shopify, the shop it is for, and until when the callback may bring
    it back. The one callback that carries it deletes it, so it works once.
    No shop row exists yet, hence the domain instead of `shop_id`."""

    __tablename__ = "oauth_states"
    __privacy__ = Privacy(shop_rows="transient")  # a nonce and a domain, for 10 minutes
    __table_args__ = (Index("ix_oauth_states_expires_at", "expires_at"),)

    nonce: str = Field(primary_key=True, max_length=64)
    shop_domain: str = Field(max_length=255)
    expires_at: datetime


class DelayEpisode(SQLModel, table=True):
    """A delay the rules detected on an order: one row per order and cause,
    kept for good. Support reports (proactive coverage) and the retention
    job (churn of delayed-and-told against delayed-and-not-told) count these
    rows, so a suppressed or unsent message never deletes one."""

    __tablename__ = "delay_episodes"
    __privacy__ = Privacy()  # facts about an order's parcel, no personal data
    __table_args__ = (
        UniqueConstraint("shop_id", "order_id", "cause"),
        Index("ix_delay_episodes_shop_detected", "shop_id", "detected_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    order_id: int = Field(foreign_key="orders.id", index=True)
    shipment_id: int | None = Field(default=None, foreign_key="shipments.id")
    # not_shipped, estimate_revised, estimate_passed, stalled, exception, tracking_problem
    cause: str = Field(max_length=32)
    detected_at: datetime
    promised_at: datetime | None = None  # what the customer was promised
    expected_at: datetime | None = None  # what we now expect, when known
    told_at: datetime | None = None  # the customer was told: when the message left
    # The message's channel, from when it is queued (cleared if it never leaves).
    told_channel: str | None = Field(default=None, max_length=8)
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None  # delivered, cancelled or the cause went away
    resolution: str | None = Field(default=None, max_length=16)  # the order's state then
    # Shopify Flow: when "Order delay detected" / "Tracking problem detected"
    # and "Order delivered late" were fired for this episode (`app.flow`).
    flow_detected_at: datetime | None = None
    flow_delivered_late_at: datetime | None = None


class Ticket(SQLModel, table=True):
    """A support ticket from the shop's helpdesk (or our own API): what the
    CSAT survey, the support reports and the retention split are about."""

    __tablename__ = "tickets"
    __privacy__ = Privacy(
        {"requester_email": Erasure.NULL, "requester_phone": Erasure.NULL, "subject": Erasure.NULL}
    )
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "external_id"),
        Index("ix_tickets_shop_opened", "shop_id", "opened_at"),
        Index("ix_tickets_shop_customer", "shop_id", "customer_id"),
        # The support report: tickets closed in a period, and when the
        # customer first asked about an order (`app.support_metrics`).
        Index("ix_tickets_shop_closed", "shop_id", "closed_at"),
        Index("ix_tickets_shop_order", "shop_id", "order_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    source: str = Field(max_length=32)  # gorgias, zendesk, standard, api
    external_id: str = Field(max_length=128)
    channel: str = Field(max_length=16)  # email, chat, sms, phone, social, other
    status: str = Field(max_length=16)  # open, pending, solved, closed
    type: str = Field(default="other", max_length=32)  # where_is_my_order, return, damage, ...
    tier: str | None = Field(default=None, max_length=32)
    assignee: str | None = Field(default=None, max_length=255)
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    order_id: int | None = Field(default=None, foreign_key="orders.id")
    requester_email: str | None = Field(default=None, max_length=320)
    requester_phone: str | None = Field(default=None, max_length=32)
    subject: str | None = Field(default=None, sa_column=Column(Text))
    opened_at: datetime
    first_response_at: datetime | None = None  # the first public agent reply
    closed_at: datetime | None = None  # the last time it was solved or closed
    source_updated_at: datetime
    created_at: datetime
    # Added with the helpdesk intake (0014): what survey eligibility reads.
    tags: str | None = Field(default=None, sa_column=Column(Text))  # lower case, one per line
    spam: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    merged: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    agent_started: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    internal: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    # When the survey of this ticket is due (closed + the shop's delay); the
    # survey sweep reads it through its index and clears it.
    survey_due_at: datetime | None = Field(default=None, index=True)


class Survey(SQLModel, table=True):
    """The CSAT survey of one closed ticket (at most one per ticket), and its
    answer: a rating 1-5 and an optional comment."""

    __tablename__ = "surveys"
    __privacy__ = Privacy({"comment": Erasure.NULL})
    __table_args__ = (
        UniqueConstraint("shop_id", "ticket_id"),
        Index("ix_surveys_shop_customer", "shop_id", "customer_id"),
        # The support report: surveys sent and answered in a period.
        Index("ix_surveys_shop_sent", "shop_id", "sent_at"),
        Index("ix_surveys_shop_answered", "shop_id", "answered_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    ticket_id: int = Field(foreign_key="tickets.id")
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    channel: str | None = Field(default=None, max_length=8)
    agent: str | None = Field(default=None, max_length=255)  # the assignee when sent
    source: str = Field(default="careloop", max_length=16)  # careloop, or api: rated elsewhere
    sent_at: datetime | None = None
    rating: int | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text))
    answered_at: datetime | None = None
    created_at: datetime
    # Added with the survey page (0014).
    locale: str | None = Field(default=None, max_length=16)
    reminder_due_at: datetime | None = Field(default=None, index=True)
    reminded_at: datetime | None = None
    alerted_at: datetime | None = None  # the shop's support address was told of a low rating


class TicketMessage(SQLModel, table=True):
    """One message on a ticket: who wrote it (customer, agent, system),
    public or internal, and when. First response, one-touch resolution and
    abandonment are read from these."""

    __tablename__ = "ticket_messages"
    __privacy__ = Privacy({"body": Erasure.NULL})
    __table_args__ = (
        UniqueConstraint("shop_id", "ticket_id", "external_id"),
        Index("ix_ticket_messages_ticket", "shop_id", "ticket_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    ticket_id: int = Field(foreign_key="tickets.id")
    external_id: str = Field(max_length=128)
    author_kind: str = Field(max_length=16)  # customer, agent, system
    public: bool = True
    sent_at: datetime
    body: str | None = Field(default=None, sa_column=Column(Text))


class CustomerActivity(SQLModel, table=True):
    """A customer's counted orders on one day of the shop's calendar
    (`app.retention_facts`), kept up to date in the transaction that applies
    each order, so that the retention job aggregates days and never converts
    time zones or re-reads every order. `first_day` (the customer's first
    counted day, on each of their rows) names their cohort. What came before
    each row (`previous_day`, None on the first; `orders_before`;
    `days_before`) lets the job count each customer by one row of theirs (the
    first in a period or window, the one that makes them a repeat buyer)
    with plain sums, where a COUNT(DISTINCT) or a GROUP BY customer would
    sort or hash every row."""

    __tablename__ = "customer_activity"
    __privacy__ = Privacy()  # counts and amounts under our own customer id
    __table_args__ = (
        Index("ix_customer_activity_shop_day", "shop_id", "day"),
        Index("ix_customer_activity_shop_first_day", "shop_id", "first_day"),
    )

    shop_id: int = Field(foreign_key="shops.id", primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", primary_key=True)
    day: date = Field(primary_key=True)  # in the shop's time zone
    first_day: date
    previous_day: date | None = None  # their counted day before this one
    orders_before: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    days_before: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    orders: int
    revenue: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))


class RetentionSnapshot(SQLModel, table=True):
    """The retention report of one shop as of one date, for one period length
    (`app.retention_snapshots`): aggregates only (`report`, a JSON document of
    counts and amounts), replaced whole when the same date is run again."""

    __tablename__ = "retention_snapshots"
    __privacy__ = Privacy()  # cohort counts and amounts, no customer in them
    __table_args__ = (UniqueConstraint("shop_id", "as_of", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    as_of: date
    period: str = Field(max_length=8)  # week, month, quarter
    window_days: int
    timezone: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    customers: int
    churned: int
    eligible: int  # customers whose first order is a whole window before `as_of`
    computed_at: datetime
    report: str = Field(sa_column=Column(Text, nullable=False))


class RetentionAtRisk(SQLModel, table=True):
    """A customer at risk in a snapshot: active, but their usual interval
    between orders has passed. Our own ids and dates only; customers/redact
    deletes the customer's rows all the same."""

    __tablename__ = "retention_at_risk"
    __privacy__ = Privacy({"customer_id": Erasure.DELETE_ROW})
    __table_args__ = (Index("ix_retention_at_risk_snapshot", "shop_id", "snapshot_id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    snapshot_id: int = Field(foreign_key="retention_snapshots.id")
    customer_id: int = Field(foreign_key="customers.id")
    last_order_day: date
    days_since: int
    usual_interval_days: int
    orders: int
    last_rating: int | None = None
    open_delay: bool = False


class LineItem(SQLModel, table=True):
    """One line of an order as Shopify last described it (title, variant,
    SKU, quantity, unit price), for the order's page. Replaced whole by each
    newer order snapshot. Products, not people: nothing personal."""

    __tablename__ = "line_items"
    __privacy__ = Privacy()
    __table_args__ = (Index("ix_line_items_order", "shop_id", "order_id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    order_id: int = Field(foreign_key="orders.id")
    position: int
    title: str = Field(max_length=255)
    variant_title: str | None = Field(default=None, max_length=255)
    sku: str | None = Field(default=None, max_length=255)
    quantity: int
    price: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))


class Rule(SQLModel, table=True):
    """A shop's proactive rule (`app.rule_book`): on which trigger, for which
    orders, on which channels, with which words, when."""

    __tablename__ = "rules"
    __privacy__ = Privacy()  # the merchant's own settings
    __table_args__ = (Index("ix_rules_shop_trigger", "shop_id", "trigger"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    name: str = Field(max_length=120)
    trigger: str = Field(max_length=40)  # app.rule_book.TRIGGERS
    enabled: bool = True
    template_kind: str = Field(max_length=32)  # notifications.rendering.KINDS
    channels: str = Field(max_length=32)  # "email,sms": preference order
    category: str = Field(max_length=16)  # transactional or marketing
    wait_minutes: int = 0  # after the trigger, before the message may leave
    quiet_hours: bool = True  # SMS waits for the morning
    # Conditions; None or empty matches every order.
    min_order_value: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    countries: str = Field(default="", max_length=1000)  # "US,CA": shipping country
    tags: str = Field(default="", max_length=1000)  # any of these order tags
    shipping_methods: str = Field(default="", max_length=1000)  # shipping line titles
    # Delay rules: told once more when the delay grows by this many hours.
    escalation_hours: int | None = None
    created_at: datetime
    updated_at: datetime
    # Deleted by the merchant: off, out of every list, and kept so that the
    # messages it sent still name it (`app.rule_changes.deleted`).
    deleted_at: datetime | None = None


class TicketStatusChange(SQLModel, table=True):
    """A ticket's status moved (open, pending, solved, closed), and when the
    helpdesk says it did: resolution times and reopen counts read these."""

    __tablename__ = "ticket_status_changes"
    __privacy__ = Privacy()
    __table_args__ = (
        UniqueConstraint("shop_id", "ticket_id", "at", "status"),
        Index("ix_ticket_status_changes_ticket", "shop_id", "ticket_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id")
    ticket_id: int = Field(foreign_key="tickets.id")
    previous: str | None = Field(default=None, max_length=16)
    status: str = Field(max_length=16)
    at: datetime


class SupportSettings(SQLModel, table=True):
    """A shop's support settings: how tickets are typed, when and to whom
    surveys go, and where low ratings are reported. No row: the defaults."""

    __tablename__ = "support_settings"
    __privacy__ = Privacy()  # the shop's own settings and its support address

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", unique=True)
    survey_delay_minutes: int = 0
    survey_cooldown_days: int = 30  # a customer surveyed this recently is not asked again
    reminder_after_hours: int | None = None  # one reminder; None: off
    skip_tags: str = Field(default="", sa_column=Column(Text, nullable=False))
    force_tags: str = Field(default="", sa_column=Column(Text, nullable=False))
    # JSON {"tag": "type"}: the shop's own words for ticket types, over the defaults.
    type_map: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    support_email: str | None = Field(default=None, max_length=320)
    recovery_message: bool = False  # an apology with a discount after a low rating
    # JSON: the shop's own service-level bounds over ours (`app.service_levels.scale_for`).
    service_levels: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, server_default="{}")
    )
    updated_at: datetime
