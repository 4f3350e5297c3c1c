"""Request and response schemas of the JSON API (`/api/v1`). They are the
contract: `app.web.contract` parses requests with them, shapes answers with
them and writes the OpenAPI document from them.

Numbers that arrive as text (query strings) must be plain ASCII digits:
Python's int() also reads "٣" and " 3", which no client means.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from app.email_address import sender_problem
from app.order_state import OrderState
from app.providers import KINDS, PROVIDERS
from app.web.params import DIGITS, ROW_ID_MAX, SHOPIFY_ID_MAX
from notifications import policy, rendering
from notifications.phone import to_e164

MAX_PAGE = 200


def _digits(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str):
        if not DIGITS.fullmatch(value):
            raise ValueError("must be a whole number written with the digits 0-9")
        return int(value)
    return value


def _printable(value: str | None) -> str | None:
    # Providers' signing secrets are printable text; a NUL or a line break is a
    # copy-and-paste accident (and PostgreSQL refuses NUL in the stored hint).
    if value is not None and not value.isprintable():
        raise ValueError("must be printable text (no line breaks or control characters)")
    return value


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# The bounds come before the text-to-number step, so that the OpenAPI
# document shows them as minimum and maximum.
PageLimit = Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_digits)]
RowId = Annotated[int, Field(ge=1, le=ROW_ID_MAX), BeforeValidator(_digits)]
ShopifyId = Annotated[int, Field(ge=1, le=SHOPIFY_ID_MAX), BeforeValidator(_digits)]
Text = Annotated[str, AfterValidator(_no_nul)]
Locale = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", max_length=16)]


class Query(BaseModel):
    """Query strings: an unknown parameter is refused, so that a typo
    (`?limt=5`) is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Body(BaseModel):
    """JSON bodies: an unknown field is refused, for the same reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- orders ------------------------------------------------------------------


class OrdersQuery(Query):
    state: OrderState | None = None
    limit: PageLimit = 50
    cursor: RowId | None = Field(
        default=None, description="`next_cursor` of the previous page, to read the next"
    )


class OrderSummary(BaseModel):
    id: int = Field(description="Shopify's order id")
    name: str | None
    state: OrderState
    state_changed_at: datetime | None
    financial_status: str | None
    fulfillment_status: str | None
    currency: str | None
    total_price: str | None
    created_at: datetime | None
    cancelled_at: datetime | None


class OrderList(BaseModel):
    orders: list[OrderSummary]
    next_cursor: int | None = Field(description="null on the last page")


class CustomerDocument(BaseModel):
    id: int
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    email_marketing_consent: str | None
    sms_marketing_consent: str | None
    redacted: bool


class ShipmentDocument(BaseModel):
    id: str
    source: str
    status: str
    status_detail: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    promised_ship_at: datetime | None
    shipped_at: datetime | None
    estimated_delivery_at: datetime | None
    delivered_at: datetime | None
    last_scan_at: datetime | None
    updated_at: datetime | None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    kind: str
    from_: str | None = Field(alias="from")
    to: str
    shipment: str | None
    cause: str
    occurred_at: datetime | None
    recorded_at: datetime | None


class OrderDocument(OrderSummary):
    email: str | None
    phone: str | None
    customer: CustomerDocument | None
    shipments: list[ShipmentDocument]
    timeline: list[TimelineEntry]


# --- inbox -------------------------------------------------------------------


class InboxQuery(Query):
    status: Literal["pending", "done", "dead", "parked"] = "dead"
    limit: PageLimit = 50


class InboxEntry(BaseModel):
    id: int
    source: str
    topic: str
    status: str
    attempts: int
    last_error: str | None
    received_at: datetime
    next_attempt_at: datetime


class InboxList(BaseModel):
    messages: list[InboxEntry]


class Requeued(BaseModel):
    status: Literal["queued"]
    id: int


# --- data requests -----------------------------------------------------------


class DataRequestRecord(BaseModel):
    id: int
    shopify_request_id: int | None
    customer_id: int | None
    requested_at: datetime
    export: dict[str, Any]


class DataRequestList(BaseModel):
    data_requests: list[DataRequestRecord]


# --- fulfillment providers ---------------------------------------------------


class ProviderKind(BaseModel):
    kind: Literal[KINDS]


class ProviderAddress(ProviderKind):
    provider: Literal[tuple(PROVIDERS)]


class ProviderSecret(Body):
    secret: Annotated[str, Field(max_length=1000), AfterValidator(_printable)] | None = Field(
        default=None, description="The provider's signing secret, where it signs its webhooks"
    )


class ProviderConnection(BaseModel):
    kind: str
    provider: str
    signing_secret: str | None = Field(description="A hint of the secret, never the secret")
    created_at: datetime
    updated_at: datetime


class IssuedConnection(ProviderConnection):
    webhook_url: str = Field(description="Shown once: give it to the provider")
    secret_header: str | None = Field(
        default=None,
        description="Shown once, for a provider that signs nothing (Gorgias): the header "
        "to add to its HTTP integration, with the secret we made",
    )


class ProviderList(BaseModel):
    providers: list[ProviderConnection]


# --- notifications -----------------------------------------------------------


class NotificationsQuery(Query):
    order_id: ShopifyId | None = Field(default=None, description="Shopify's order id")
    limit: PageLimit = 50


class NotificationChange(BaseModel):
    status: str
    detail: str | None
    at: datetime


class NotificationRecord(BaseModel):
    id: int
    kind: str
    category: str
    channel: str
    recipient: str
    locale: str
    status: str
    status_detail: str | None
    attempts: int
    provider: str | None
    provider_message_id: str | None
    segments: int | None
    created_at: datetime
    sent_at: datetime | None
    history: list[NotificationChange]


class NotificationList(BaseModel):
    notifications: list[NotificationRecord]


# --- templates ---------------------------------------------------------------


TemplateKind = Literal[tuple(rendering.KINDS)]


class TemplateAddress(BaseModel):
    kind: TemplateKind
    channel: Literal["email", "sms"]
    locale: Locale


# Template texts are plain strings here: what a shop template may hold (no
# NUL, bounded size and nesting) is `rendering.validate_override`'s to say,
# with the line, as a 422.
class TemplateText(Body):
    subject: str | None = None
    html: str | None = None
    text: str


class TemplatePreview(Body):
    """A draft when `text` is given; otherwise what a message would use now."""

    kind: TemplateKind = "shipping"
    channel: Literal["email", "sms"] = "email"
    locale: Locale = "en"
    subject: str | None = None
    html: str | None = None
    text: str | None = None


class TemplateSaved(BaseModel):
    status: Literal["saved"]
    kind: str
    channel: str
    locale: str


class Rendered(BaseModel):
    subject: str | None
    html: str | None
    text: str


# --- notification settings ---------------------------------------------------


def _clock(value: str) -> str:
    policy.parse_clock(value)  # ValueError names the problem
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; an IANA name such as Europe/Madrid"
        ) from None
    return value


def _sender(value: str | None) -> str | None:
    problem = value and sender_problem(value)
    if problem:
        raise ValueError(f"an email address such as help@shop.com ({problem})")
    return value


# A Twilio Messaging Service SID: "MG" and 32 hex digits (34 characters, the
# width of the column it is stored in).
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


def _sms_sender(value: str | None) -> str | None:
    if value is not None and not (
        MESSAGING_SERVICE_SID.fullmatch(value) or to_e164(value, None) == value
    ):
        raise ValueError("an E.164 number or a messaging service SID (MG + 32 hex digits)")
    return value


Clock = Annotated[Text, Field(max_length=5), AfterValidator(_clock)]
# An optional field that cannot be null: left out of the document's defaults.
_NOT_GIVEN = Field(default=None, json_schema_extra=lambda schema: schema.pop("default"))


class NotificationSettings(BaseModel):
    email_from: str | None
    sms_from: str | None
    quiet_hours_start: str
    quiet_hours_end: str
    daily_message_cap: int
    timezone: str
    locale: str


class NotificationSettingsChange(Body):
    """Only the settings given are changed (`model_dump(exclude_unset=True)`).
    The senders can be cleared with null; the others cannot: their default
    below only stands for "not given", and is never validated or stored."""

    email_from: Annotated[Text, Field(max_length=320), AfterValidator(_sender)] | None = None
    sms_from: Annotated[Text, Field(max_length=34), AfterValidator(_sms_sender)] | None = None
    quiet_hours_start: Clock = _NOT_GIVEN
    quiet_hours_end: Clock = _NOT_GIVEN
    daily_message_cap: Annotated[int, Field(strict=True, ge=1, le=50)] = _NOT_GIVEN
    timezone: Annotated[Text, Field(max_length=64), AfterValidator(_timezone)] = _NOT_GIVEN
    locale: Locale = _NOT_GIVEN


# --- history import ----------------------------------------------------------


class ImportStatus(BaseModel):
    id: int
    status: str
    step: str
    lines_applied: int
    lines_skipped: int
    objects_total: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


# --- tickets (our own helpdesk API) and support settings ---------------------


def _utc(value: datetime | None) -> datetime | None:
    """Times must say their offset; kept in UTC, within years 2000-2100 (a
    typo in a year should not make a ticket decades long)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    if not 2000 <= value.year < 2100:
        raise ValueError("must be between the years 2000 and 2100")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_utc)]


def _address(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    if not (at and local and "." in domain and " " not in value.strip()):
        raise ValueError("must be an email address")
    return value.strip().lower()


TicketChannel = Literal["email", "chat", "sms", "phone", "social", "other"]
TicketType = Literal["where_is_my_order", "return", "damage", "product_question", "other"]
ShortText = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)]


class Requester(Body):
    email: Annotated[str, Field(max_length=320), AfterValidator(_printable)] | None = None
    phone: Annotated[str, Field(max_length=32), AfterValidator(_printable)] | None = None


class TicketMessageIn(Body):
    id: ShortText | None = Field(default=None, description="Yours; posting it again adds nothing")
    author: Literal["customer", "agent", "system"]
    public: bool = Field(default=True, description="False: an internal note")
    sent_at: Moment | None = Field(default=None, description="Default: now")
    body: Annotated[Text, Field(max_length=10_000)] | None = None


class TicketCreate(Body):
    external_id: ShortText | None = Field(default=None, description="Your id for the ticket")
    channel: TicketChannel = "other"
    subject: Annotated[Text, Field(max_length=1000)] | None = None
    opened_at: Moment | None = Field(default=None, description="Default: now")
    requester: Requester | None = None
    assignee: Annotated[str, Field(max_length=255), AfterValidator(_printable)] | None = None
    tier: Annotated[str, Field(max_length=32), AfterValidator(_printable)] | None = None
    tags: list[Annotated[str, Field(max_length=100), AfterValidator(_printable)]] = Field(
        default=[], max_length=100
    )
    type: TicketType | None = Field(default=None, description="Default: from the tags")
    order_name: Annotated[str, Field(max_length=64), AfterValidator(_printable)] | None = None
    agent_started: bool = False
    internal: bool = False
    messages: list[TicketMessageIn] = Field(default=[], max_length=100)


class TicketAt(Body):
    at: Moment | None = Field(default=None, description="When it happened; default: now")


class RatingIn(Body):
    rating: int = Field(ge=1, le=5)
    comment: Annotated[Text, Field(max_length=2000)] | None = None
    answered_at: Moment | None = None


class TicketsQuery(Query):
    status: Literal["open", "pending", "solved", "closed"] | None = None
    limit: PageLimit = 50
    cursor: RowId | None = Field(default=None, description="next_cursor of the previous page")


class TicketMessageOut(BaseModel):
    id: str
    author: str
    public: bool
    sent_at: datetime
    body: str | None


class SurveyOut(BaseModel):
    source: str
    channel: str | None
    agent: str | None
    sent_at: datetime | None
    rating: int | None
    comment: str | None
    answered_at: datetime | None


class TicketSummary(BaseModel):
    id: int
    source: str
    external_id: str
    channel: str
    status: str
    type: str
    tier: str | None
    assignee: str | None
    customer_id: int | None
    order_id: int | None
    subject: str | None
    tags: list[str]
    opened_at: datetime
    first_response_at: datetime | None
    closed_at: datetime | None


class TicketDocument(TicketSummary):
    messages: list[TicketMessageOut]
    survey: SurveyOut | None


class TicketList(BaseModel):
    tickets: list[TicketSummary]
    next_cursor: int | None


class SupportSettingsDoc(BaseModel):
    survey_delay_minutes: int
    survey_cooldown_days: int
    reminder_after_hours: int | None
    skip_tags: list[str]
    force_tags: list[str]
    type_map: dict[str, str]
    support_email: str | None
    recovery_message: bool


TagList = list[Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]]


class SupportSettingsChange(Body):
    survey_delay_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)
    survey_cooldown_days: int | None = Field(default=None, ge=0, le=365)
    reminder_after_hours: int | None = Field(
        default=None, ge=1, le=24 * 14, description="null turns the reminder off"
    )
    skip_tags: TagList | None = Field(default=None, max_length=100)
    force_tags: TagList | None = Field(default=None, max_length=100)
    type_map: (
        dict[
            Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)],
            TicketType,
        ]
        | None
    ) = Field(default=None, max_length=200)
    support_email: (
        Annotated[str, Field(max_length=320), AfterValidator(_printable), AfterValidator(_address)]
        | None
    ) = Field(default=None, description="Where low ratings are reported at once")
    recovery_message: bool | None = Field(
        default=None,
        description="Send a recovery message after a low rating (the discount hook; not sent yet)",
    )
