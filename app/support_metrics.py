"""The support team's figures: CSAT, helpdesk KPIs, contact rate and
proactive coverage, for one shop and one period. The definitions live here
once (`DEFINITIONS`): the report page, the JSON, the CSV and the README say
the same thing because they all read them from this module.

Rows are read with explicit SQL (one query per table, always by shop and
period); the figures are plain functions over those rows, so that the same
code gives the same numbers on SQLite and PostgreSQL (medians, for one,
which SQLite cannot compute in SQL).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session

from app import service_levels
from app.clock import parse_timestamp, to_utc

# Channels answered while the customer waits, graded on the real-time scale.
REAL_TIME = frozenset({"chat", "sms", "phone"})
WISMO = "where_is_my_order"
COMPLAINT_TYPES = frozenset({"damage"})
# The customer-facing delay causes: a tracking problem is the merchant's news.
CUSTOMER_DELAYS = ("not_shipped", "estimate_revised", "estimate_passed", "stalled", "exception")

DEFINITIONS: dict[str, str] = {
    "csat": "CSAT score = responses rated 4 or 5 ÷ all responses x 100 (responses answered in "
    "the period).",
    "average_rating": "Average of the ratings (1-5) answered in the period.",
    "response_rate": "Response rate = surveys sent in the period that were answered ÷ surveys "
    "sent in the period x 100.",
    "first_response": "First response time: from the ticket's opening (the customer's first "
    "message) to the first public agent reply; average and median over tickets opened in the "
    "period that have one.",
    "resolution": "Resolution time: from the opening to the close; average and median over "
    "tickets closed in the period.",
    "sla_breaches": "SLA breach: a ticket opened in the period whose first public reply came "
    "later than its channel's target (the 'average' level of the shop's service levels: by "
    "default 24 h for email and social, 10 min for chat, SMS and phone), or has not come and "
    "the target has passed. Counted per day of opening, in the shop's time zone.",
    "one_touch": "One-touch resolution rate = tickets closed in the period with exactly one "
    "public agent reply ÷ tickets closed in the period that had at least one x 100.",
    "self_service": "Self-service rate = tickets closed in the period without any agent "
    "message (public or internal), on channels other than chat, SMS and phone ÷ tickets "
    "closed in the period x 100.",
    "abandonment": "Abandonment rate = chat, SMS and phone tickets closed in the period "
    "without any public agent reply ÷ chat, SMS and phone tickets closed in the period x 100.",
    "contact_rate": "Contact rate = tickets opened in the period ÷ orders placed in the "
    "period x 100 (target: under 0.5%). The where-is-my-order contact rate counts only "
    "tickets of that type; the complaint rate only damage tickets (target: under 0.02%).",
    "proactive_coverage": "Proactive coverage = delayed orders (a customer-facing delay "
    "detected in the period) whose customer was told before opening any ticket about that "
    "order ÷ all delayed orders x 100. 'Told after we told' counts where-is-my-order tickets "
    "opened in the period about an order whose delay we had already told.",
}


@dataclass(frozen=True)
class Filters:
    agent: str | None = None
    channel: str | None = None
    type: str | None = None
    tier: str | None = None


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, from whole days (`first`..`last`) in the shop's
    time zone."""

    start: datetime
    end: datetime
    timezone: str
    first: date
    last: date

    @classmethod
    def of_days(cls, first: date, last: date, timezone: str) -> Period:
        zone = ZoneInfo(timezone)
        start = datetime.combine(first, datetime.min.time(), zone)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
        utc = ZoneInfo("UTC")
        return cls(start.astimezone(utc), end.astimezone(utc), timezone, first, last)

    def previous(self) -> Period:
        """As many whole local days just before: across a clock change its
        hours differ, its days do not."""
        days = self.last - self.first + timedelta(days=1)
        return Period.of_days(self.first - days, self.first - timedelta(days=1), self.timezone)

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def day(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.timezone)).date().isoformat()


@dataclass
class TicketRow:
    """A ticket with what the figures need from its messages and survey."""

    id: int
    external_id: str
    source: str
    channel: str
    type: str
    tier: str | None
    assignee: str | None
    status: str
    order_id: int | None
    opened_at: datetime
    first_response_at: datetime | None
    closed_at: datetime | None
    public_agent_replies: int = 0
    agent_messages: int = 0
    survey_agent: str | None = None
    survey_sent_at: datetime | None = None
    rating: int | None = None
    comment: str | None = None
    answered_at: datetime | None = None
    extra: dict = field(default_factory=dict)


def first_response_target(channel: str, scale: service_levels.Scale) -> timedelta:
    """The SLA target: the 'average' level's first response bound for the
    channel's group, on the shop's own scale where it set one."""
    bounds = scale.first_response[service_levels.channel_group(channel)]
    return timedelta(seconds=next(b.limit for b in bounds if b.level == "average"))


# --- reading ---------------------------------------------------------------

_TICKETS = text(
    """
    SELECT t.id, t.external_id, t.source, t.channel, t.type, t.tier, t.assignee, t.status,
           t.order_id, t.opened_at, t.first_response_at, t.closed_at,
           (SELECT COUNT(*) FROM ticket_messages m
             WHERE m.shop_id = t.shop_id AND m.ticket_id = t.id
               AND m.author_kind = 'agent' AND m.public) AS public_agent_replies,
           (SELECT COUNT(*) FROM ticket_messages m
             WHERE m.shop_id = t.shop_id AND m.ticket_id = t.id
               AND m.author_kind = 'agent') AS agent_messages,
           s.agent, s.sent_at, s.rating, s.comment, s.answered_at
      FROM tickets t
      LEFT JOIN surveys s ON s.shop_id = t.shop_id AND s.ticket_id = t.id
     WHERE t.shop_id = :shop
       AND t.id IN (
             -- Each range on its own index: the cost follows the period's
             -- tickets, not the years before it (bench/support_report.py).
             SELECT id FROM tickets
              WHERE shop_id = :shop AND opened_at >= :start AND opened_at < :end
             UNION
             SELECT id FROM tickets
              WHERE shop_id = :shop AND closed_at >= :start AND closed_at < :end
             UNION
             SELECT ticket_id FROM surveys
              WHERE shop_id = :shop AND sent_at >= :start AND sent_at < :end
             UNION
             SELECT ticket_id FROM surveys
              WHERE shop_id = :shop AND answered_at >= :start AND answered_at < :end)
     ORDER BY t.opened_at, t.id
    """
)


def _moment(value) -> datetime | None:
    """SQLite gives back naive UTC text; PostgreSQL aware datetimes."""
    if isinstance(value, str):
        return parse_timestamp(value)
    return to_utc(value) if value is not None else None


def read_tickets(session: Session, shop_id: int, period: Period) -> list[TicketRow]:
    """Every ticket of the shop that the period's figures touch."""
    rows = session.exec(
        _TICKETS, params={"shop": shop_id, "start": period.start, "end": period.end}
    )
    # fmt: off
    return [
        TicketRow(
            id=r.id,
            external_id=r.external_id,
            source=r.source,
            channel=r.channel,
            type=r.type,
            tier=r.tier,
            assignee=r.assignee,
            status=r.status,
            order_id=r.order_id,
            opened_at=_moment(r.opened_at),
            first_response_at=_moment(r.first_response_at),
            closed_at=_moment(r.closed_at),
            public_agent_replies=r.public_agent_replies,
            agent_messages=r.agent_messages,
            survey_agent=r.agent,
            survey_sent_at=_moment(r.sent_at),
            rating=r.rating,
            comment=r.comment,
            answered_at=_moment(r.answered_at),
        )
        for r in rows
    ]
    # fmt: on


def count_orders(session: Session, shop_id: int, period: Period) -> int:
    return session.exec(
        text(
            "SELECT COUNT(*) FROM orders WHERE shop_id = :shop"
            " AND shopify_created_at >= :start AND shopify_created_at < :end"
        ),
        params={"shop": shop_id, "start": period.start, "end": period.end},
    ).one()[0]


def read_delays(session: Session, shop_id: int, period: Period) -> list[dict]:
    """Per delayed order (a customer-facing delay detected in the period):
    when we first told, and when the customer first opened a ticket about it."""
    causes = ", ".join(f"'{cause}'" for cause in CUSTOMER_DELAYS)
    rows = session.exec(
        text(
            f"""
            SELECT d.order_id, MIN(d.told_at) AS told_at,
                   (SELECT MIN(t.opened_at) FROM tickets t
                     WHERE t.shop_id = d.shop_id AND t.order_id = d.order_id) AS asked_at
              FROM delay_episodes d
             WHERE d.shop_id = :shop AND d.cause IN ({causes})
               AND d.order_id IN (SELECT order_id FROM delay_episodes
                                   WHERE shop_id = :shop AND cause IN ({causes})
                                     AND detected_at >= :start AND detected_at < :end)
             GROUP BY d.shop_id, d.order_id
            """
        ),
        params={"shop": shop_id, "start": period.start, "end": period.end},
    )
    return [
        {"order_id": r.order_id, "told_at": _moment(r.told_at), "asked_at": _moment(r.asked_at)}
        for r in rows
    ]


# --- figures ---------------------------------------------------------------


def ratio(part: int, whole: int) -> dict:
    """A percentage with the counts behind it; None when there is no whole."""
    return {
        "percent": round(part * 100 / whole, 2) if whole else None,
        "count": part,
        "of": whole,
    }


def durations(values: list[timedelta]) -> dict:
    """Average and median, in seconds, and how many tickets they are over."""
    seconds = [v.total_seconds() for v in values]
    return {
        "average_seconds": round(statistics.fmean(seconds), 1) if seconds else None,
        "median_seconds": round(statistics.median(seconds), 1) if seconds else None,
        "count": len(seconds),
    }


def matches(ticket: TicketRow, filters: Filters) -> bool:
    agent = ticket.survey_agent or ticket.assignee
    return (
        (filters.agent is None or agent == filters.agent)
        and (filters.channel is None or ticket.channel == filters.channel)
        and (filters.type is None or ticket.type == filters.type)
        and (filters.tier is None or ticket.tier == filters.tier)
    )


def figures(
    tickets: list[TicketRow],
    orders: int,
    delays: list[dict],
    period: Period,
    now: datetime,
    scale: service_levels.Scale,
) -> dict:
    """Every figure of the report for one period, from plain rows."""
    opened = [t for t in tickets if period.holds(t.opened_at)]
    closed = [t for t in tickets if period.holds(t.closed_at)]
    sent = [t for t in tickets if period.holds(t.survey_sent_at)]
    answered = [t for t in tickets if period.holds(t.answered_at) and t.rating is not None]
    ratings = [t.rating for t in answered]

    breaches: Counter[str] = Counter()
    for t in opened:
        target = t.opened_at + first_response_target(t.channel, scale)
        if (t.first_response_at or now) > target:  # late, or not yet and already late
            breaches[period.day(t.opened_at)] += 1

    volume: dict[str, Counter[str]] = defaultdict(Counter)
    for t in opened:
        volume[period.day(t.opened_at)][f"{t.type}|{t.channel}"] += 1

    replied = [t for t in closed if t.public_agent_replies >= 1]
    real_time_closed = [t for t in closed if t.channel in REAL_TIME]
    wismo = [t for t in opened if t.type == WISMO]
    told_first = [
        d
        for d in delays
        if d["told_at"] and (d["asked_at"] is None or d["told_at"] < d["asked_at"])
    ]
    told_at = {d["order_id"]: d["told_at"] for d in delays if d["told_at"]}
    return {
        "tickets_opened": len(opened),
        "tickets_closed": len(closed),
        "csat": ratio(sum(1 for r in ratings if r >= 4), len(ratings)),
        "average_rating": round(statistics.fmean(ratings), 2) if ratings else None,
        "distribution": {str(n): ratings.count(n) for n in range(1, 6)},
        "response_rate": ratio(sum(1 for t in sent if t.rating is not None), len(sent)),
        "first_response": durations(
            [t.first_response_at - t.opened_at for t in opened if t.first_response_at]
        ),
        "resolution": durations([t.closed_at - t.opened_at for t in closed]),
        "sla_breaches": {
            "total": sum(breaches.values()),
            "of": len(opened),
            "per_day": dict(sorted(breaches.items())),
        },
        "one_touch": ratio(sum(1 for t in replied if t.public_agent_replies == 1), len(replied)),
        "self_service": ratio(
            sum(1 for t in closed if t.agent_messages == 0 and t.channel not in REAL_TIME),
            len(closed),
        ),
        "abandonment": ratio(
            sum(1 for t in real_time_closed if t.public_agent_replies == 0), len(real_time_closed)
        ),
        "volume_per_day": {
            day: [
                {"type": key.split("|")[0], "channel": key.split("|")[1], "tickets": count}
                for key, count in sorted(counts.items())
            ]
            for day, counts in sorted(volume.items())
        },
        "orders": orders,
        "contact_rate": ratio(len(opened), orders),
        "wismo_contact_rate": ratio(len(wismo), orders),
        "complaint_rate": ratio(sum(1 for t in opened if t.type in COMPLAINT_TYPES), orders),
        "proactive_coverage": ratio(len(told_first), len(delays)),
        "wismo_after_told": sum(
            1 for t in wismo if t.order_id in told_at and told_at[t.order_id] < t.opened_at
        ),
        "channels": sorted({t.channel for t in opened}),
    }


def low_ratings(tickets: list[TicketRow], period: Period) -> list[dict]:
    """Ratings 1-3 answered in the period, with their comment and ticket."""
    return [
        {
            "ticket": t.external_id,
            "source": t.source,
            "channel": t.channel,
            "agent": t.survey_agent or t.assignee,
            "rating": t.rating,
            "comment": t.comment,
            "answered_at": t.answered_at.isoformat(),
        }
        for t in tickets
        if period.holds(t.answered_at) and t.rating is not None and t.rating <= 3
    ]


def support_report(
    session: Session, shop_id: int, timezone: str, first: date, last: date,
    filters: Filters, now: datetime,
) -> dict:  # fmt: skip
    """The whole report: the period's figures with the previous period's
    beside them, the low ratings, the per-ticket rows, and the service level."""
    period = Period.of_days(first, last, timezone)
    before = period.previous()
    results = {}
    offered: set[str] = set()
    for name, span in (("current", period), ("previous", before)):
        every = read_tickets(session, shop_id, span)
        if name == "current":
            offered = {t.channel for t in every if span.holds(t.opened_at)}
        results[name] = (span, [t for t in every if matches(t, filters)])
    period_tickets = results["current"][1]
    scale = shop_scale(session, shop_id)
    current = figures(
        period_tickets, count_orders(session, shop_id, period),
        read_delays(session, shop_id, period), period, now, scale,
    )  # fmt: skip
    previous = figures(
        results["previous"][1], count_orders(session, shop_id, before),
        read_delays(session, shop_id, before), before, now, scale,
    )  # fmt: skip
    groups: dict[str, list[TicketRow]] = defaultdict(list)
    for ticket in period_tickets:
        groups[service_levels.channel_group(ticket.channel)].append(ticket)
    per_group = {group: figures(rows, 0, [], period, now, scale)
                 for group, rows in sorted(groups.items())}  # fmt: skip
    return {
        "period": {"from": first.isoformat(), "to": last.isoformat(), "timezone": timezone},
        "previous_period": {"from": before.first.isoformat(), "to": before.last.isoformat()},
        "filters": {k: v for k, v in vars(filters).items() if v is not None},
        "current": current,
        "previous": previous,
        "low_ratings": low_ratings(period_tickets, period),
        # Channels offered is the shop's, whatever the filter narrows.
        "service_level": service_levels.scorecard(
            per_group, current | {"channels": sorted(offered)}, scale
        ),
        "tickets": [ticket_line(t) for t in period_tickets if period.holds(t.opened_at)],
        "definitions": DEFINITIONS,
    }


TICKET_COLUMNS = (
    "ticket", "source", "channel", "type", "tier", "agent", "status",
    "opened_at", "first_response_at", "closed_at", "rating", "comment",
)  # fmt: skip


def shop_scale(session: Session, shop_id: int) -> service_levels.Scale:
    """The shop's service-level bounds (its own where it set them)."""
    own = session.exec(
        text("SELECT service_levels FROM support_settings WHERE shop_id = :shop"),
        params={"shop": shop_id},
    ).first()
    return service_levels.scale_for(json.loads(own[0]) if own else {})


def ticket_line(ticket: TicketRow) -> dict:
    """One ticket as the CSV's row."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "ticket": ticket.external_id,
        "source": ticket.source,
        "channel": ticket.channel,
        "type": ticket.type,
        "tier": ticket.tier,
        "agent": ticket.survey_agent or ticket.assignee,
        "status": ticket.status,
        "opened_at": iso(ticket.opened_at),
        "first_response_at": iso(ticket.first_response_at),
        "closed_at": iso(ticket.closed_at),
        "rating": ticket.rating,
        "comment": ticket.comment,
    }
