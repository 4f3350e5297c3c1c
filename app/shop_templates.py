"""A shop's own notification templates: which exist, saving one (validated,
with the line of each problem), deleting one, and previewing a draft or what
would be used now. The JSON API (`app.web.api.templates`) and the Templates
page are two shells over these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from app.models import Shop, TemplateOverride
from notifications import rendering
from notifications.dispatch import locale_chain

LOCALES = ("en", "es", "ru")  # the languages we ship templates in


def addresses() -> list[tuple[str, str, str]]:
    """Every (kind, channel, locale) a shop can write a template for."""
    return [
        (kind, channel, locale)
        for kind in sorted(rendering.KINDS)
        for channel in rendering.CHANNELS
        for locale in LOCALES
    ]


def _of_shop(shop_id: int, kind: str, channel: str, locales: list[str]):
    return select(TemplateOverride).where(
        TemplateOverride.shop_id == shop_id,
        TemplateOverride.kind == kind,
        TemplateOverride.channel == channel,
        TemplateOverride.locale.in_(locales),
    )


def overrides(session: Session, shop_id: int) -> dict[tuple[str, str, str], TemplateOverride]:
    rows = session.exec(select(TemplateOverride).where(TemplateOverride.shop_id == shop_id)).all()
    return {(r.kind, r.channel, r.locale): r for r in rows}


def override(
    session: Session, shop_id: int, kind: str, channel: str, locale: str
) -> TemplateOverride | None:
    return session.exec(_of_shop(shop_id, kind, channel, [locale])).first()


def save(
    session: Session,
    shop_id: int,
    kind: str,
    channel: str,
    locale: str,
    source: rendering.TemplateSource,
    now: datetime,
) -> list[rendering.TemplateProblem]:
    """Save the shop's template unless it has problems (then nothing is
    saved and the problems are returned). The caller commits."""
    problems = rendering.validate_override(kind, channel, source)
    if problems:
        return problems
    row = override(session, shop_id, kind, channel, locale) or TemplateOverride(
        shop_id=shop_id, kind=kind, channel=channel, locale=locale, text="", updated_at=now
    )
    row.subject, row.html, row.text = source.subject, source.html, source.text
    row.updated_at = now
    session.add(row)
    return []


def delete(session: Session, shop_id: int, kind: str, channel: str, locale: str) -> bool:
    """Delete the shop's template (ours is used again); False if it had none."""
    row = override(session, shop_id, kind, channel, locale)
    if row is not None:
        session.delete(row)
    return row is not None


def preview(
    session: Session,
    shop: Shop,
    kind: str,
    channel: str,
    locale: str,
    draft: rendering.TemplateSource | None,
) -> rendering.Rendered | list[rendering.TemplateProblem]:
    """Render with sample data: the draft if given (its problems if it has
    any), else what a message in `locale` would use now (the shop's saved
    template, es-MX falling back to es, or ours)."""
    source = draft
    if draft is not None:
        problems = rendering.validate_override(kind, channel, draft)
        if problems:
            return problems
    else:
        saved = session.exec(
            _of_shop(shop.id, kind, channel, locale_chain(locale)).order_by(
                func.length(TemplateOverride.locale).desc()
            )
        ).first()
        if saved:
            source = rendering.TemplateSource(saved.subject, saved.html, saved.text)
    context = rendering.sample_context(kind) | {"shop_name": shop.name}
    return rendering.render(
        kind, channel, locale, context, shop_locale=shop.locale, override=source
    )
