"""Request and response schemas of the JSON API (`/api/v1`). They are the
contract: `app.web.contract` parses requests with them, shapes answers with
them and writes the OpenAPI document from them.

Numbers that arrive as text (query strings) must be plain ASCII digits:
Python's int() also reads "٣" and " 3", which no client means.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from babel import Locale as BabelLocale
from babel import UnknownLocaleError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from app import notification_log, notification_settings, rule_book
from app.countries import country_problem
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
Channel = Literal[rendering.CHANNELS]


def _country(value: str) -> str:
    if problem := country_problem(value):
        raise ValueError(problem)
    return value


Country = Annotated[str, AfterValidator(_country)]
# A JSON true or false, nothing else: 1, "false" and "yes" are refused, not
# read as whatever Python would make of them.
Flag = Annotated[bool, Field(strict=True)]


def _known_locale(value: str) -> str:
    """A language CLDR knows ("xx" is shaped like one and is none)."""
    try:
        BabelLocale.parse(value, sep="-")
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"unknown language {value!r}; a code such as en or es-MX") from None
    return value


Locale = Annotated[
    str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", max_length=16), AfterValidator(_known_locale)
]


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


class MessageStep(BaseModel):
    status: str
    detail: str | None
    at: datetime


class OrderMessage(BaseModel):
    """A message the rules queued about the order, and what became of it:
    sent, or why not (no consent, quiet hours, the cap, no longer true,
    the rule switched off), step by step."""

    id: int
    kind: str
    rule: str | None = Field(description="the rule's name; null for a built-in message")
    channel: str
    status: str
    status_detail: str | None
    created_at: datetime
    sent_at: datetime | None
    history: list[MessageStep]


class DelayRecord(BaseModel):
    cause: str
    shipment: str | None
    detected_at: datetime
    promised_at: datetime | None
    expected_at: datetime | None
    told_at: datetime | None
    told_channel: str | None
    escalated_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None


class OrderDocument(OrderSummary):
    email: str | None
    phone: str | None
    customer: CustomerDocument | None
    shipments: list[ShipmentDocument]
    timeline: list[TimelineEntry] = Field(
        description="state and shipment changes, and rule decisions that sent nothing (kind "
        "`rule`: stale news, a duplicate, no rule applying)"
    )
    messages: list[OrderMessage]
    delays: list[DelayRecord]


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


NotificationKind = Literal[tuple(rendering.KINDS)]
NotificationStatus = Literal[notification_log.STATUSES]


class NotificationsQuery(Query):
    order_id: ShopifyId | None = Field(default=None, description="Shopify's order id")
    kind: NotificationKind | None = None
    status: NotificationStatus | None = None
    channel: Channel | None = None
    limit: PageLimit = 50
    cursor: RowId | None = Field(default=None, description="next_cursor of the previous page")


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
    rule: str | None = Field(description="the name of the rule that queued it")
    history: list[NotificationChange]


class NotificationList(BaseModel):
    notifications: list[NotificationRecord]
    next_cursor: int | None


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
    """Stored as HH:MM whatever the spelling ("8:00" is "08:00"), so that
    equal times compare equal."""
    return policy.parse_clock(value).strftime("%H:%M")  # ValueError names the problem


def _timezone(value: str) -> str:
    if value not in notification_settings.TIME_ZONES:
        raise ValueError(f"unknown time zone {value!r}; an IANA name such as Europe/Madrid")
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


# --- birthday settings -------------------------------------------------------

# Shopify's metafield namespace and key: letters, digits, "-" and "_"
# (namespace 2-255 characters, key 2-64; Metafield reference).
MetafieldNamespace = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{2,255}$", max_length=255)]
MetafieldKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{2,64}$", max_length=64)]


class BirthdaySettings(BaseModel):
    birth_date_namespace: str
    birth_date_key: str
    birthday_hour: int = Field(description="local hour of the greeting, 0-23")
    birthday_discount: bool = Field(description="a single-use discount code with the greeting")
    birthday_discount_percent: int
    birthday_discount_days: int = Field(description="how long the code is valid")


class BirthdaySettingsChange(Body):
    """Only the settings given are changed; none can be null."""

    birth_date_namespace: MetafieldNamespace = _NOT_GIVEN
    birth_date_key: MetafieldKey = _NOT_GIVEN
    birthday_hour: Annotated[int, Field(strict=True, ge=0, le=23)] = _NOT_GIVEN
    birthday_discount: Flag = _NOT_GIVEN
    birthday_discount_percent: Annotated[int, Field(strict=True, ge=1, le=100)] = _NOT_GIVEN
    birthday_discount_days: Annotated[int, Field(strict=True, ge=1, le=365)] = _NOT_GIVEN


# --- delay settings ----------------------------------------------------------

Days = Annotated[int, Field(strict=True, ge=1, le=60)]


class DelaySettings(BaseModel):
    """When an order counts as late (`app.delays`)."""

    country: str = Field(description="the shop's home, for the stalled threshold")
    processing_days: int = Field(description="business days to ship, when Shopify says nothing")
    transit_days: int = Field(description="business days in transit, by default")
    transit_days_by_country: dict[str, int]
    stalled_days_home: int
    stalled_days_abroad: int
    not_shipped_grace_hours: int = Field(description="past the promise, before telling")
    tracking_problem_hours: int = Field(description="without a scan, before the merchant hears")
    holidays: list[date] = Field(description="days the shop does not ship, its local calendar")


class DelaySettingsChange(Body):
    """Only the settings given are changed; none can be null."""

    country: Country = _NOT_GIVEN
    processing_days: Annotated[int, Field(strict=True, ge=0, le=60)] = _NOT_GIVEN
    transit_days: Days = _NOT_GIVEN
    transit_days_by_country: Annotated[dict[Country, Days], Field(max_length=250)] = _NOT_GIVEN
    stalled_days_home: Days = _NOT_GIVEN
    stalled_days_abroad: Days = _NOT_GIVEN
    # Not before 24 hours past the promise: earlier alerts are mostly false.
    not_shipped_grace_hours: Annotated[int, Field(strict=True, ge=24, le=720)] = _NOT_GIVEN
    tracking_problem_hours: Annotated[int, Field(strict=True, ge=24, le=720)] = _NOT_GIVEN
    holidays: Annotated[list[date], Field(max_length=400)] = _NOT_GIVEN


# --- rules -------------------------------------------------------------------

RuleTrigger = Literal[tuple(rule_book.TRIGGERS)]


# A tag or shipping method: what Shopify shows, without the commas that
# separate them in a list.
def _label(value: str) -> str:
    """A blank label would match nothing and still count as a condition."""
    if not value.strip():
        raise ValueError("a tag or shipping method cannot be blank")
    return value.strip()


Label = Annotated[
    Text,
    Field(min_length=1, max_length=rule_book.MAX_LABEL_LENGTH, pattern=r"^[^,\x00-\x1f]+$"),
    AfterValidator(_label),
]


class RuleFields(BaseModel):
    name: Annotated[Text, Field(min_length=1, max_length=rule_book.MAX_NAME_LENGTH)]
    trigger: RuleTrigger
    enabled: Flag = True
    template_kind: str | None = Field(
        default=None, max_length=32, description="the trigger's own kind when not given"
    )
    channels: list[Channel] = Field(
        default=["email", "sms"], min_length=1, max_length=2, description="in preference order"
    )
    category: Literal["transactional", "marketing"] = "transactional"
    wait_minutes: Annotated[int, Field(strict=True, ge=0, le=43_200)] = 0
    quiet_hours: Flag = Field(default=True, description="an SMS waits for the morning")
    min_order_value: Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"),
                                              decimal_places=2)] | None = None  # fmt: skip
    countries: list[Country] = Field(default=[], max_length=rule_book.MAX_COUNTRIES)
    tags: list[Label] = Field(default=[], max_length=rule_book.MAX_LABELS)
    shipping_methods: list[Label] = Field(default=[], max_length=rule_book.MAX_LABELS)
    escalation_hours: Annotated[int, Field(strict=True, ge=1, le=720)] | None = None


def _unset_list(**bounds):
    """A list field a change may leave out (never null)."""
    return Field(default=None, json_schema_extra=lambda schema: schema.pop("default"), **bounds)


class RuleCreate(RuleFields, Body):
    pass


class RuleChange(Body):
    """Only the fields given change (`model_dump(exclude_unset=True)`)."""

    name: Annotated[Text, Field(min_length=1, max_length=rule_book.MAX_NAME_LENGTH)] = _NOT_GIVEN
    trigger: RuleTrigger = _NOT_GIVEN
    enabled: Flag = _NOT_GIVEN
    template_kind: Annotated[str, Field(max_length=32)] = _NOT_GIVEN
    channels: list[Channel] = _unset_list(min_length=1, max_length=2)
    category: Literal["transactional", "marketing"] = _NOT_GIVEN
    wait_minutes: Annotated[int, Field(strict=True, ge=0, le=43_200)] = _NOT_GIVEN
    quiet_hours: Flag = _NOT_GIVEN
    min_order_value: Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"),
                                              decimal_places=2)] | None = None  # fmt: skip
    countries: list[Country] = _unset_list(max_length=rule_book.MAX_COUNTRIES)
    tags: list[Label] = _unset_list(max_length=rule_book.MAX_LABELS)
    shipping_methods: list[Label] = _unset_list(max_length=rule_book.MAX_LABELS)
    escalation_hours: Annotated[int, Field(strict=True, ge=1, le=720)] | None = None


class RuleDocument(BaseModel):
    """A rule as stored, read without the bounds a new value must meet: a
    rule stored before a bound existed is still listed (an edit of it then
    names the field to mend), never a 500 for the whole list."""

    id: int
    name: str
    trigger: str
    enabled: bool
    template_kind: str
    channels: list[str]
    category: str
    wait_minutes: int
    quiet_hours: bool
    min_order_value: Decimal | None = None
    countries: list[str]
    tags: list[str]
    shipping_methods: list[str]
    escalation_hours: int | None
    created_at: datetime
    updated_at: datetime


class RuleList(BaseModel):
    rules: list[RuleDocument]


class RuleAddress(BaseModel):
    rule_id: RowId


class WouldTell(BaseModel):
    order_id: int = Field(description="Shopify's order id")
    order_name: str | None
    kind: str
    about: str = Field(description="the delay's cause, or the parcel")
    channel: str
    recipient: str
    not_sent_because: str | None = Field(description="null: it would be sent")


class RulePreview(BaseModel):
    rule_id: int
    would_tell: list[WouldTell]


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


# --- retention ---------------------------------------------------------------


class RetentionQuery(Query):
    period: Literal["week", "month", "quarter"] = "month"
    as_of: date | None = Field(
        default=None, description="A snapshot's date (YYYY-MM-DD); default the latest."
    )


class RetentionCell(BaseModel):
    offset: int
    customers: int
    percent: float | None
    orders: int
    revenue: str


class ShopifyCohortMetrics(BaseModel):
    """Shopify's customer cohort analysis, for checking against the admin:
    its period 0 is the share that ordered again within the first period."""

    customers: int
    retention_rates: list[float | None]
    sales: str
    average_order_value: str
    amount_spent_per_customer: str
    net_sales: str | None


class RetentionCohort(BaseModel):
    cohort: date
    label: str
    customers: int
    cells: list[RetentionCell]
    too_young: bool
    churned: int | None
    churn_rate: float | None
    repeat_customers: int
    repeat_rate: float | None
    orders: int
    revenue: str
    revenue_per_customer: str
    shopify: ShopifyCohortMetrics


class RetentionTotals(BaseModel):
    customers: int
    churned: int
    in_grown_cohorts: int
    churn_rate: float | None
    repeat_rate: float | None
    revenue: str
    revenue_per_customer: str | None


class PeriodRetention(BaseModel):
    period: str
    start: date
    end: date
    active_at_start: int
    active_at_end: int
    acquired: int
    rate: float | None


class Proportion(BaseModel):
    count: int
    percent: float | None
    interval: tuple[float, float] | None = Field(description="95% Wilson interval, in percent")


class SplitGroup(BaseModel):
    group: str
    customers: int
    churned: Proportion
    repeat: Proportion


class RetentionSplits(BaseModel):
    rating: list[SplitGroup]
    delay: list[SplitGroup]
    support: list[SplitGroup]


class AtRiskCustomer(BaseModel):
    customer_id: int
    last_order_day: date
    days_since: int
    usual_interval_days: int
    orders: int
    last_rating: int | None
    open_delay: bool


class TrendPoint(BaseModel):
    as_of: date
    customers: int
    churn_rate: float | None
    repeat_rate: float | None


class RetentionReport(BaseModel):
    as_of: date
    computed_at: datetime
    period: str
    window_days: int
    timezone: str
    currency: str
    offsets: int
    cohorts: list[RetentionCohort]
    totals: RetentionTotals
    period_retention: list[PeriodRetention]
    splits: RetentionSplits
    at_risk: list[AtRiskCustomer]
    trend: list[TrendPoint]


class RetentionSettings(BaseModel):
    churn_window_days: int


class RetentionSettingsChange(Body):
    churn_window_days: Annotated[int, Field(strict=True, ge=1, le=3650)]


# --- support report ------------------------------------------------------------

TICKET_CHANNELS = ("email", "chat", "sms", "phone", "social", "other")


class SupportReportQuery(Query):
    """A period of whole days in the shop's time zone (at most a year), and
    the filters: the figures count only the tickets that match them."""

    from_: date = Field(alias="from", description="first day, in the shop's time zone")
    to: date = Field(description="last day, included")
    agent: Annotated[Text, Field(min_length=1, max_length=255)] | None = None
    channel: Literal[TICKET_CHANNELS] | None = None  # type: ignore[valid-type]
    type: Annotated[Text, Field(min_length=1, max_length=32)] | None = None
    tier: Annotated[Text, Field(min_length=1, max_length=32)] | None = None

    @model_validator(mode="after")
    def _a_real_period(self) -> SupportReportQuery:
        if self.to < self.from_:
            raise ValueError("`to` is before `from`")
        if (self.to - self.from_).days > 366:
            raise ValueError("the period is longer than a year")
        return self


class SupportReport(BaseModel):
    period: dict[str, Any]
    previous_period: dict[str, Any]
    filters: dict[str, str]
    current: dict[str, Any]
    previous: dict[str, Any]
    low_ratings: list[dict[str, Any]]
    service_level: dict[str, Any]
    tickets: list[dict[str, Any]]
    definitions: dict[str, str]


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
    public: Flag = Field(default=True, description="False: an internal note")
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
    agent_started: Flag = False
    internal: Flag = False
    messages: list[TicketMessageIn] = Field(default=[], max_length=rule_book.MAX_COUNTRIES)


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
    recovery_message: Flag | None = Field(
        default=None,
        description="Send a recovery message after a low rating (the discount hook; not sent yet)",
    )


# --- service levels ---------------------------------------------------------------

ScaleLevel = Literal["stellar", "above_average", "average", "below_average"]
ChannelGroup = Literal["email", "social", "real_time"]
BoundSeconds = Annotated[float, Field(gt=0, le=90 * 86400)]


class ServiceLevelsChange(Body):
    """The shop's own bounds for some levels (the rest stay ours): seconds
    for first response and resolution, an average rating for satisfaction,
    a percent for proactive coverage; and the minimum sample."""

    first_response: dict[ChannelGroup, dict[ScaleLevel, BoundSeconds]] | None = None
    resolution: dict[ChannelGroup, dict[ScaleLevel, BoundSeconds]] | None = None
    satisfaction: dict[ScaleLevel, Annotated[float, Field(ge=1, le=5)]] | None = None
    proactivity: dict[ScaleLevel, Annotated[float, Field(ge=0, le=100)]] | None = None
    min_sample: Annotated[int, Field(strict=True, ge=1, le=10_000)] | None = None


class ServiceLevels(BaseModel):
    own: dict[str, Any] = Field(description="the bounds the shop set")
    scale: dict[str, Any] = Field(description="every bound the report grades on")
