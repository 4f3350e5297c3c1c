"""Templates: every kind, channel and locale, with the shop's own where it has
one; the editor (starting from ours), a live preview and the problems with
their line. Same validation, sandbox and render slots as the JSON API."""

from __future__ import annotations

from flask import abort, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlmodel import Session

from app import shop_templates
from app.web.context import runtime
from app.web.pages.base import bp, check_csrf, signed_in
from app.web.render_slots import SLOTS, one_render_slot
from notifications import rendering


def _address(kind: str, channel: str, language: str) -> None:
    if (kind, channel, language) not in shop_templates.addresses():
        abort(404, description=_("There is no such template."))


def _draft(channel: str) -> rendering.TemplateSource:
    text = request.form.get("text", "")
    if channel == "sms":
        return rendering.TemplateSource(None, None, text)
    return rendering.TemplateSource(
        request.form.get("subject", ""), request.form.get("html", ""), text
    )


def _problem_lines(problems: list[rendering.TemplateProblem]) -> list[str]:
    return [
        _("%(field)s, line %(line)s: %(message)s", field=p.field, line=p.line, message=p.message)
        if p.line
        else _("%(field)s: %(message)s", field=p.field, message=p.message)
        for p in problems
    ]


@bp.get("/templates")
@signed_in
def templates():
    with Session(runtime().engine) as db:
        mine = shop_templates.overrides(db, g.shop.id)
    return render_template(
        "app/templates.html", shop=g.shop, addresses=shop_templates.addresses(), mine=mine
    )


def _editor(kind, channel, language, source, status=200, problems=(), saved=False):
    return render_template(
        "app/template.html", shop=g.shop, kind=kind, channel=channel, language=language,
        source=source, problems=list(problems), saved=saved,
    ), status  # fmt: skip


@bp.get("/templates/<kind>/<channel>/<language>")
@signed_in
def template(kind: str, channel: str, language: str):
    _address(kind, channel, language)
    with Session(runtime().engine) as db:
        row = shop_templates.override(db, g.shop.id, kind, channel, language)
    source = (
        rendering.TemplateSource(row.subject, row.html, row.text)
        if row
        else rendering.our_source(kind, channel, language)
    )
    return _editor(kind, channel, language, source, saved=request.args.get("saved") == "1")


@bp.post("/templates/<kind>/<channel>/<language>")
@signed_in
def template_save(kind: str, channel: str, language: str):
    check_csrf()
    _address(kind, channel, language)
    refused = SLOTS.take(g.shop_id)  # as the API's one_render_slot, answered as a page
    if refused:
        abort(
            refused, description=_("Templates are being checked right now; save again in a second.")
        )
    try:
        return _save(kind, channel, language)
    finally:
        SLOTS.give_back(g.shop_id)


def _save(kind: str, channel: str, language: str):
    rt, draft = runtime(), _draft(channel)
    with Session(rt.engine) as db:
        if request.form.get("action") == "delete":
            shop_templates.delete(db, g.shop.id, kind, channel, language)
            db.commit()
            return redirect(
                url_for("pages.template", kind=kind, channel=channel, language=language)
            )
        problems = shop_templates.save(
            db, g.shop.id, kind, channel, language, draft, rt.clock.now()
        )
        if problems:
            return _editor(kind, channel, language, draft, 422, _problem_lines(problems))
        db.commit()
    return redirect(
        url_for("pages.template", kind=kind, channel=channel, language=language, saved="1")
    )


@bp.post("/templates/<kind>/<channel>/<language>/preview")
@signed_in
@one_render_slot
def template_preview(kind: str, channel: str, language: str):
    """The editor's live preview (a fetch): the draft rendered with sample
    data, or its problems with their lines."""
    check_csrf()
    _address(kind, channel, language)
    with Session(runtime().engine) as db:
        rendered = shop_templates.preview(db, g.shop, kind, channel, language, _draft(channel))
    if isinstance(rendered, list):
        return jsonify({"problems": _problem_lines(rendered)}), 422
    return jsonify({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})
