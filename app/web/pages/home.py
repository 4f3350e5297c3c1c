"""Home: what needs attention now, and the messages sent today.

`HEADLINES` is where other capabilities put their headline figures (the
rules, surveys and retention pages): a function of (session, shop, now) that
returns a `Headline`, or None to show nothing. The home page shows each one
as a card, in the order they were added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import g, render_template
from sqlmodel import Session

from app.attention import attention, messages_today
from app.models import Shop
from app.web.context import runtime
from app.web.pages.base import bp, signed_in


@dataclass(frozen=True)
class Headline:
    title: str  # already translated: `gettext(...)`
    figure: str  # "4.6 / 5", "12 %", "3"
    detail: str = ""
    endpoint: str | None = None  # a page to read more, e.g. "pages.surveys"


HeadlineSource = Callable[[Session, Shop, datetime], Headline | None]
HEADLINES: list[HeadlineSource] = []


def home_headline(source: HeadlineSource) -> HeadlineSource:
    """Register a headline figure for the home page (a decorator)."""
    HEADLINES.append(source)
    return source


@bp.get("/")
@signed_in
def home():
    rt = runtime()
    now = rt.clock.now()
    with Session(rt.engine) as db:
        needs = attention(db, g.shop.id, now)
        today = messages_today(db, g.shop.id, g.shop.timezone, now)
        headlines = [h for h in (source(db, g.shop, now) for source in HEADLINES) if h]
    return render_template(
        "app/home.html", shop=g.shop, needs=needs, today=today, headlines=headlines
    )
