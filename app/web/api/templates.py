"""The shop's own notification templates: save, delete, preview."""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import func
from sqlmodel import Session, select

from app.models import Shop, TemplateOverride
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.render_slots import one_render_slot
from app.web.schemas import Rendered, TemplateAddress, TemplatePreview, TemplateSaved, TemplateText
from notifications import rendering
from notifications.dispatch import locale_chain

ADDRESS = "/templates/<kind>/<channel>/<locale>"


def _problems(problems):
    return jsonify({"error": {
        "code": "invalid_template",
        "message": "the template was not saved",
        "problems": [{"field": p.field, "line": p.line, "message": p.message} for p in problems],
    }}), 422  # fmt: skip


def _shop_templates(kind: str, channel: str, locales: list[str]):
    """The signed-in shop's own templates for a kind and channel in `locales`."""
    return select(TemplateOverride).where(
        TemplateOverride.shop_id == shop_id(),
        TemplateOverride.kind == kind,
        TemplateOverride.channel == channel,
        TemplateOverride.locale.in_(locales),
    )


@api.route(
    "PUT", ADDRESS, path=TemplateAddress, body=TemplateText, response=TemplateSaved,
    errors=(422, 429, 503),
)  # fmt: skip
@one_render_slot
def put_template(path: TemplateAddress, body: TemplateText):
    """Save the shop's own template; a broken one is refused with the line
    and the reason."""
    source = rendering.TemplateSource(body.subject, body.html, body.text)
    problems = rendering.validate_override(path.kind, path.channel, source)
    if problems:
        return _problems(problems)
    rt = runtime()
    with Session(rt.engine) as session:
        row = session.exec(
            _shop_templates(path.kind, path.channel, [path.locale])
        ).first() or TemplateOverride(
            shop_id=shop_id(), kind=path.kind, channel=path.channel, locale=path.locale, text="",
            updated_at=rt.clock.now(),
        )  # fmt: skip
        row.subject, row.html, row.text = source.subject, source.html, source.text
        row.updated_at = rt.clock.now()
        session.add(row)
        session.commit()
    return TemplateSaved(status="saved", **path.model_dump())


@api.route("DELETE", ADDRESS, path=TemplateAddress, status=204, errors=(404,))
def delete_template(path: TemplateAddress):
    """Delete the shop's own template: ours is used again."""
    with Session(runtime().engine) as session:
        row = session.exec(_shop_templates(path.kind, path.channel, [path.locale])).first()
        if row is not None:
            session.delete(row)
            session.commit()
    if row is None:
        return error_response(404, "not_found", "no such template of this shop")
    return "", 204


@api.route(
    "POST", "/templates/preview", body=TemplatePreview, response=Rendered, errors=(422, 429, 503)
)
@one_render_slot
def preview_template(body: TemplatePreview):
    """Render a template with sample data: the shop's draft if the body has
    `text`, else what would be used now (its saved one, or ours)."""
    source = None
    if body.text is not None:
        source = rendering.TemplateSource(body.subject, body.html, body.text)
        problems = rendering.validate_override(body.kind, body.channel, source)
        if problems:
            return _problems(problems)
    with Session(runtime().engine) as session:
        shop = session.get(Shop, shop_id())
        if source is None:
            # The one a message in this locale would use (es-MX falls back to es).
            saved = session.exec(
                _shop_templates(body.kind, body.channel, locale_chain(body.locale)).order_by(
                    func.length(TemplateOverride.locale).desc()
                )
            ).first()
            if saved:
                source = rendering.TemplateSource(saved.subject, saved.html, saved.text)
    context = rendering.sample_context(body.kind) | {"shop_name": shop.name}
    rendered = rendering.render(
        body.kind, body.channel, body.locale, context, shop_locale=shop.locale, override=source
    )
    return Rendered(subject=rendered.subject, html=rendered.html, text=rendered.text)
