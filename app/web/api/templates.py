"""The shop's own notification templates: save, delete, preview."""

from __future__ import annotations

from flask import jsonify
from sqlmodel import Session

from app import shop_templates
from app.models import Shop
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.render_slots import one_render_slot
from app.web.schemas import Rendered, TemplateAddress, TemplatePreview, TemplateSaved, TemplateText
from notifications import rendering

ADDRESS = "/templates/<kind>/<channel>/<locale>"


def _problems(problems, message: str):
    return jsonify({"error": {
        "code": "invalid_template",
        "message": message,
        "problems": [{"field": p.field, "line": p.line, "message": p.message} for p in problems],
    }}), 422  # fmt: skip


@api.route(
    "PUT", ADDRESS, path=TemplateAddress, body=TemplateText, response=TemplateSaved,
    errors=(422, 429, 503),
)  # fmt: skip
@one_render_slot
def put_template(path: TemplateAddress, body: TemplateText):
    """Save the shop's own template; a broken one is refused with the line
    and the reason."""
    source = rendering.TemplateSource(body.subject, body.html, body.text)
    rt = runtime()
    with Session(rt.engine) as session:
        problems = shop_templates.save(
            session, shop_id(), path.kind, path.channel, path.locale, source, rt.clock.now()
        )
        if problems:
            return _problems(problems, "the template was not saved")
        session.commit()
    return TemplateSaved(status="saved", **path.model_dump())


@api.route("DELETE", ADDRESS, path=TemplateAddress, status=204, errors=(404,))
def delete_template(path: TemplateAddress):
    """Delete the shop's own template: ours is used again."""
    with Session(runtime().engine) as session:
        deleted = shop_templates.delete(session, shop_id(), path.kind, path.channel, path.locale)
        session.commit()
    if not deleted:
        return error_response(404, "not_found", "no such template of this shop")
    return "", 204


@api.route(
    "POST", "/templates/preview", body=TemplatePreview, response=Rendered, errors=(422, 429, 503)
)
@one_render_slot
def preview_template(body: TemplatePreview):
    """Render a template with sample data: the shop's draft if the body has
    `text`, else what would be used now (its saved one, or ours)."""
    draft = None
    if body.text is not None:
        draft = rendering.TemplateSource(body.subject, body.html, body.text)
    with Session(runtime().engine) as session:
        shop = session.get(Shop, shop_id())
        rendered = shop_templates.preview(
            session, shop, body.kind, body.channel, body.locale, draft
        )
    if isinstance(rendered, list):
        return _problems(rendered, "the template cannot be rendered")
    return Rendered(subject=rendered.subject, html=rendered.html, text=rendered.text)
